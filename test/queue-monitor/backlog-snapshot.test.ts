import { strict as assert } from 'node:assert';
import { toSnapshot } from '../../src/queue-monitor';

describe('queue-monitor/backlog-snapshot', () => {
  it('measures the oldest wait from the earliest candidate, never below zero', () => {
    const s = toSnapshot('b2g', { waiting: 2, prioritized: 1, delayed: 3, active: 4 }, [1_500, 1_000, 1_200], 4_000);
    assert.deepEqual(s, {
      type: 'b2g',
      waiting: 2,
      prioritized: 1,
      delayed: 3,
      active: 4,
      oldestWaitMs: 3_000,
      oldestQueuedAt: 1_000,
      at: 4_000,
    });
    // A producer whose clock runs ahead of ours must not yield a negative wait.
    assert.equal(toSnapshot('b2g', { waiting: 1 }, [5_000], 4_000).oldestWaitMs, 0);
  });

  it('reports no wait when nothing waits, even if a head was read a moment earlier', () => {
    const s = toSnapshot('b2g', { delayed: 1, active: 2 }, [1_000], 4_000);
    assert.equal(s.waiting, 0);
    assert.equal(s.prioritized, 0);
    assert.equal(s.oldestWaitMs, null);
    assert.equal(s.oldestQueuedAt, null);
  });
});
