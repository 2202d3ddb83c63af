import assert from 'node:assert/strict';
import { TraceError } from '../../src/lib';
import { formatTrace, parseTrace, TRACE_EPOCH } from '../../src/simulator';

const TYPES = new Set(['b2g', 'linux64']);
const problems = (text: string): string[] => {
  try {
    parseTrace(text, 'load.csv', TYPES);
  } catch (err) {
    assert.ok(err instanceof TraceError, String(err));
    return [...err.problems];
  }
  assert.fail('the trace was accepted');
};

describe('simulate: load traces', () => {
  it('refuses hostile CSV with the line of every problem', () => {
    assert.match(problems('')[0]!, /empty/);
    assert.match(problems('time,type\n0,b2g\n')[0]!, /line 1: .*missing duration/);
    assert.match(problems('time,type,duration,shoesize\n')[0]!, /unknown shoesize/);
    assert.match(problems('time,type,duration\n')[0]!, /only a header/);
    assert.deepEqual(problems('time,type,duration\n0,b2g,10\n1,b2g\n2,b2g,10,extra\n'), ['line 3: 2 field(s), the header has 3', 'line 4: 4 field(s), the header has 3']);
    assert.match(problems('time,type,duration\n0,b2g,-5\n')[0]!, /^line 2: duration: must be a positive duration, got "-5"/);
    assert.match(problems('time,type,duration\n0,b2g,0\n')[0]!, /line 2: duration: must be a positive/);
    assert.match(problems('time,type,duration\n0,b2g,soon\n')[0]!, /line 2: duration/);
    assert.match(problems('time,type,duration\nyesterday,b2g,10\n')[0]!, /line 2: time: "yesterday" is neither/);
    assert.match(problems('time,type,duration\n0,win32,10\n')[0]!, /line 2: unknown job type "win32" \(the config has b2g, linux64\)/);
    assert.match(problems('time,type,duration,cpus\n0,b2g,10,many\n')[0]!, /line 2: requirements.cpus/);
  });

  it('refuses times that go back, naming the line, instead of replaying a different load', () => {
    assert.deepEqual(problems('time,type,duration\n10,b2g,1\n5,b2g,1\n'), ['line 3: time 2026-01-05T00:00:05.000Z is before the line above it; sort the trace by time']);
  });

  it('refuses hostile JSON lines', () => {
    assert.match(problems('{"time":0,"type":"b2g","duration":1}\n{not json\n')[0]!, /^line 2: not JSON/);
    assert.match(problems('{"time":0,"type":"b2g","duration":1,"owner":"me"}\n')[0]!, /line 1: row: Unrecognized key/i);
    assert.match(problems('{"time":0,"type":"b2g","duration":1,"requirements":{"gpu":true}}\n')[0]!, /line 1: requirements/);
    assert.match(problems('[1,2,3]\n')[0]!, /line 1: expected a header/);
  });

  it('stops listing after 20 problems', () => {
    const p = problems('time,type,duration\n' + '0,nope,1\n'.repeat(500));
    assert.equal(p.length, 21);
    assert.match(p[20]!, /more problems not shown/);
  });

  it('reads CSV with requirements, comments and ISO times, JSON lines with units, and round-trips its own CSV', () => {
    const csv = parseTrace('# a comment\ntime,type,duration,labels,cpus\n2026-03-02T10:00:00Z,b2g,90,gpu;big,8\n\n2026-03-02T10:00:01Z,linux64,1.5,,\n', 't.csv', TYPES);
    assert.deepEqual(csv, [
      { at: Date.parse('2026-03-02T10:00:00Z'), type: 'b2g', durationMs: 90_000, requirements: { labels: ['gpu', 'big'], cpus: 8 } },
      { at: Date.parse('2026-03-02T10:00:01Z'), type: 'linux64', durationMs: 1500 },
    ]);
    const jsonl = parseTrace('{"time":0,"type":"b2g","duration":"2m"}\n{"time":"30","type":"b2g","duration":5,"requirements":{"os":"linux"}}\n', 't.jsonl', TYPES);
    assert.deepEqual(jsonl, [
      { at: TRACE_EPOCH, type: 'b2g', durationMs: 120_000 },
      { at: TRACE_EPOCH + 30_000, type: 'b2g', durationMs: 5000, requirements: { os: 'linux' } },
    ]);
    assert.deepEqual(parseTrace(formatTrace(csv), 'again.csv', TYPES), csv);
  });
});
