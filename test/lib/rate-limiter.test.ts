import assert from 'node:assert/strict';
import { RateLimiter } from '../../src/lib';
import { FakeClock } from '../fakes/fake-clock';

describe('registration rate limiter', () => {
  it('allows a burst per address, then refills at the configured rate', () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter({ burst: 3, perMinute: 6 }, clock);
    for (let i = 0; i < 3; i++) assert.deepEqual(limiter.take('10.0.0.1'), { ok: true });
    assert.deepEqual(limiter.take('10.0.0.1'), { ok: false, retryInMs: 10_000 });
    assert.deepEqual(limiter.take('10.0.0.2'), { ok: true }, 'another address has its own bucket');
    clock.advance(5_000);
    assert.deepEqual(limiter.take('10.0.0.1'), { ok: false, retryInMs: 5_000 });
    clock.advance(5_000);
    assert.deepEqual(limiter.take('10.0.0.1'), { ok: true });
    clock.advance(10 * 60_000);
    for (let i = 0; i < 3; i++) assert.deepEqual(limiter.take('10.0.0.1'), { ok: true }, 'refills up to the burst, not beyond');
    assert.equal(limiter.take('10.0.0.1').ok, false);
  });
});
