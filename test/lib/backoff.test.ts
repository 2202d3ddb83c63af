import { strict as assert } from 'node:assert';
import { equalJitterDelay, fullJitterDelay } from '../../src/lib';

describe('lib/backoff', () => {
  const policy = { baseMs: 1000, maxMs: 8000 };

  it('equal jitter: at least half of an exponential ceiling, never above it, capped', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 9].map((n) => equalJitterDelay(n, policy, () => 0)), [500, 1000, 2000, 4000, 4000, 4000]);
    assert.deepEqual([1, 2, 3, 4, 5].map((n) => equalJitterDelay(n, policy, () => 0.999999)), [999, 1999, 3999, 7999, 7999]);
  });

  it('full jitter: anywhere below the same ceiling, which doubles per failure up to the cap', () => {
    const agent = { baseMs: 500, maxMs: 30_000 };
    const top = (failures: number) => fullJitterDelay(failures, agent, () => 0.999999);
    assert.deepEqual([1, 2, 3, 4].map(top), [499, 999, 1999, 3999]);
    assert.equal(top(11), 29_999);
    assert.equal(top(5000), 29_999);
    assert.equal(fullJitterDelay(4, agent, () => 0), 0);
    assert.equal(fullJitterDelay(3, { baseMs: 10, maxMs: 25 }, () => 0.5), 12);
  });
});
