import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { z } from 'zod';
import { configSchema, parseConfigText } from '../../src/config';

const EXAMPLE = join(__dirname, '..', '..', '..', 'config', 'example.yaml');
const WRAPPERS = new Set(['pipe', 'optional', 'default', 'prefault', 'nullable', 'readonly', 'catch']);

type Schema = z.core.$ZodType;
type Def = { type: string; in?: Schema; innerType?: Schema; shape?: Record<string, Schema>; valueType?: Schema; element?: Schema };
const def = (s: Schema) => s._zod.def as unknown as Def;

function unwrap(s: Schema): Schema {
  let d = def(s);
  while (WRAPPERS.has(d.type)) {
    s = (d.type === 'pipe' ? d.in : d.innerType)!;
    d = def(s);
  }
  return s;
}

/**
 * Every key path of the schema: `jobTypes.*.overflow.pool` (`*` for a name the user picks),
 * `pools.*.warmWindows.[].cron` (`[]` for the items of a list of mappings).
 */
function schemaPaths(schema: Schema, prefix: string[] = [], out: string[][] = []): string[][] {
  const d = def(unwrap(schema));
  if (d.type === 'object') {
    for (const [k, v] of Object.entries(d.shape!)) {
      out.push([...prefix, k]);
      schemaPaths(v, [...prefix, k], out);
    }
  } else if (d.type === 'record' && def(unwrap(d.valueType!)).type === 'object') {
    schemaPaths(d.valueType!, [...prefix, '*'], out);
  } else if (d.type === 'array' && def(unwrap(d.element!)).type === 'object') {
    schemaPaths(d.element!, [...prefix, '[]'], out);
  }
  return out;
}

function flowPaths(value: unknown, prefix: string[], out: string[][]): void {
  if (Array.isArray(value)) for (const v of value) flowPaths(v, [...prefix, '[]'], out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      out.push([...prefix, k]);
      flowPaths(v, [...prefix, k], out);
    }
  }
}

/**
 * The key paths example.yaml shows, set or commented out (`# key: value` at the indentation it
 * would have), including the keys inside flow mappings such as `{ burst: 20, perMinute: 60 }`.
 */
function examplePaths(text: string): string[][] {
  const out: string[][] = [];
  const stack: Array<{ indent: number; key: string }> = [];
  for (const raw of text.split('\n')) {
    // A setting commented out inside a commented-out block has two markers: drop them all.
    let line = raw;
    for (let c = /^(\s*)#\s?(.*)$/.exec(line); c; c = /^(\s*)#\s?(.*)$/.exec(line)) line = c[1]! + c[2]!;
    const m = /^(\s*)(- )?([A-Za-z][\w-]*):(?:\s+(.*))?$/.exec(line);
    if (!m) continue;
    let indent = m[1]!.length;
    while (stack.length > 0 && stack[stack.length - 1]!.indent >= indent) stack.pop();
    if (m[2]) {
      stack.push({ indent, key: '[]' });
      indent += 2;
    }
    const path = [...stack.map((s) => s.key), m[3]!];
    out.push(path);
    stack.push({ indent, key: m[3]! });
    const value = (m[4] ?? '').replace(/\s+#.*$/, '').trim();
    if (value.startsWith('{') || value.startsWith('[')) {
      try {
        flowPaths(parse(value) as unknown, path, out);
      } catch {
        // Not YAML after all (prose in a comment): no keys to take from it.
      }
    }
  }
  return out;
}

const matches = (schema: string[], shown: string[]) => schema.length === shown.length && schema.every((s, i) => s === '*' || s === shown[i]);

describe('config/example.yaml documents every setting of the schema', () => {
  const text = readFileSync(EXAMPLE, 'utf8');

  it('the walk sees the schema and the file (it is not blind)', () => {
    const keys = schemaPaths(configSchema as unknown as Schema).map((p) => p.join('.'));
    for (const k of ['adminToken', 'cas.prefix', 'builds.lockMs', 'http.bodyLimitBytes', 'jobTypes.*.overflow.minBacklog', 'pools.*.warmWindows.[].cron']) {
      assert.ok(keys.includes(k), k);
    }
    const shown = examplePaths('a:\n  # b: 1\n  c: { d: 2 }\n# e:\n#   - f: 3\n#     # g: 4\n').map((p) => p.join('.'));
    assert.deepEqual(shown, ['a', 'a.b', 'a.c', 'a.c.d', 'e', 'e.[].f', 'e.[].g']);
  });

  it('every schema key is in the file, set or commented out', () => {
    const shown = examplePaths(text);
    const missing = schemaPaths(configSchema as unknown as Schema)
      .filter((p) => !shown.some((s) => matches(p, s)))
      .map((p) => p.join('.'));
    assert.deepEqual(missing, [], `config/example.yaml does not show: ${missing.join(', ')}`);
  });

  it('the file as shipped is a valid config once the agent token comes from the environment', () => {
    const config = parseConfigText(text, { SPILLWAY_AGENT_TOKEN: 'an-agent-token-0123456789' }, EXAMPLE);
    assert.equal(config.cas.prefix, '/cache');
  });

  it('its commented-out pools block, uncommented, is a valid config too (b2g overflowing into it)', () => {
    const lines = text.split('\n');
    const start = lines.indexOf('# pools:');
    assert.ok(start >= 0, 'a commented-out "# pools:" block');
    const end = lines.indexOf('', start);
    const pools = lines.slice(start, end).map((l) => l.replace(/^# ?/, ''));
    const withRule = text.replace('    attempts: 3\n', '    attempts: 3\n    overflow: { pool: ec2-builders }\n');
    const config = parseConfigText(`${withRule}\n${pools.join('\n')}\n`, { SPILLWAY_AGENT_TOKEN: 'an-agent-token-0123456789' }, EXAMPLE);
    assert.deepEqual(Object.keys(config.pools), ['ec2-builders', 'lab']);
    assert.equal(config.pools['ec2-builders']!.ec2!.launchTemplate.name, 'spillway-builder');
  });
});
