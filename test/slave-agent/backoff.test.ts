import { strict as assert } from 'node:assert';
import { backoffDelay } from '../../src/slave-agent';

describe('slave-agent/backoff', () => {
  it('doubles the ceiling per attempt up to the cap, with full jitter below it', () => {
    const top = (attempt: number) => backoffDelay(attempt, {}, () => 0.999999);
    assert.deepEqual([0, 1, 2, 3].map(top), [499, 999, 1999, 3999]);
    assert.equal(top(10), 29_999);
    assert.equal(top(5000), 29_999);
    assert.equal(backoffDelay(3, {}, () => 0), 0);
    assert.equal(backoffDelay(2, { baseMs: 10, capMs: 25 }, () => 0.5), 12);
  });
});
