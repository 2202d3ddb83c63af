import assert from 'node:assert/strict';
import { RepeatLog } from '../../src/lib';
import { captureLogs } from '../helpers/farm';
import { FakeClock } from '../fakes/fake-clock';

describe('repeat log: repeated identical errors', () => {
  it('logs the first at once, then one line per window with the count of the repeats', () => {
    const clock = new FakeClock();
    const logs = captureLogs();
    const repeats = new RepeatLog(logs.log, clock, 60_000);
    const refused = { queue: 'b2g', error: 'connect ECONNREFUSED 127.0.0.1:6379' };
    repeats.error('queue.error', 'linux64 Connection is closed.', { queue: 'linux64', error: 'Connection is closed.' });
    // One every 400 ms: the 150 at 0 .. 59.6 s fall in the first window; the 151st, at 60 s, closes it.
    for (let i = 0; i < 151; i++) {
      repeats.error('queue.error', `b2g ${refused.error}`, refused);
      clock.advance(400);
    }
    const lines = logs.entries.filter((e) => e.event === 'queue.error');
    assert.equal(lines.length, 3, JSON.stringify(lines));
    assert.equal(lines[0]!.queue, 'linux64', 'another kind of error has its own line');
    assert.deepEqual(JSON.parse(JSON.stringify(lines[1])), { level: 'error', event: 'queue.error', ...refused }, 'the first as it came');
    assert.equal(lines[2]!.repeated, 150, 'every repeat since the first is counted');
    assert.equal(lines[2]!.message, 'repeated 150 times in the last 60s');
  });

  it('flush reports what was counted (the dependency recovered) and starts afresh', () => {
    const clock = new FakeClock();
    const logs = captureLogs();
    const repeats = new RepeatLog(logs.log, clock, 60_000);
    for (let i = 0; i < 5; i++) repeats.warn('redis.error', 'x', { error: 'x' });
    clock.advance(3_000);
    repeats.flush();
    repeats.flush();
    repeats.warn('redis.error', 'x', { error: 'x' });
    assert.deepEqual(
      logs.entries.map((e) => [e.level, e.repeated, e.message]),
      [
        ['warn', undefined, undefined],
        ['warn', 4, 'repeated 4 times in the last 3s'],
        ['warn', undefined, undefined],
      ],
    );
  });
});
