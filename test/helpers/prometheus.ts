import { strict as assert } from 'node:assert';

/**
 * Checks Prometheus' text exposition format line by line: HELP/TYPE comments, then samples
 * `name{label="value",...} number`. Returns the samples by their `name{labels}` key.
 */
export function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const typed = new Set<string>();
  const label = String.raw`[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"`;
  // Values are read like Go's ParseFloat, which is what Prometheus uses: NaN/Inf in any case.
  const sample = new RegExp(String.raw`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:${label}(?:,${label})*)?\})? (-?(?:[0-9.]+(?:e[+-]?[0-9]+)?|[+-]?inf|nan))$`, 'i');
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (comment) {
      if (comment[1] === 'TYPE') {
        assert.match(comment[3]!, /^(counter|gauge|histogram|summary|untyped)$/, line);
        typed.add(comment[2]!);
      }
      continue;
    }
    const m = sample.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${JSON.stringify(line)}`);
    const base = m[1]!.replace(/_(bucket|sum|count|total|created)$/, '');
    assert.ok(typed.has(m[1]!) || typed.has(base) || typed.has(`${base}_total`), `no # TYPE before ${m[1]}`);
    samples.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  }
  return samples;
}

