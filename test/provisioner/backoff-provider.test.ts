import assert from 'node:assert/strict';
import { createLogger, type LogEntry } from '../../src/lib';
import { ProviderError } from '../../src/provisioner';
import { BackoffProvider } from '../../src/provisioner/backoff-provider';
import { FakeClock } from '../fakes/fake-clock';
import { FakeProvider } from '../fakes/fake-provider';

const policy = { baseMs: 1000, maxMs: 8000 };
const throttled = () => new ProviderError('EC2 StartInstances failed (RequestLimitExceeded)', 'retry', 'RequestLimitExceeded');

describe('provisioner/backoff-provider', () => {
  let clock: FakeClock;
  let inner: FakeProvider;
  let logs: LogEntry[];
  let jitter: number;
  let p: BackoffProvider;
  const signal = new AbortController().signal;

  beforeEach(() => {
    clock = new FakeClock();
    inner = new FakeProvider({ now: () => clock.now() });
    inner.add('i-1', 'stopped');
    logs = [];
    jitter = 0;
    const log = createLogger({ silent: true, sink: (e) => logs.push(e) });
    p = new BackoffProvider({ pool: 'cloud', provider: inner, clock, log, policy, random: () => jitter });
  });

  const failOnce = async () => {
    inner.failNext(throttled());
    await assert.rejects(p.list(signal), /RequestLimitExceeded/);
  };

  it('after a retryable failure, calls are refused without reaching the provider until the pause is over', async () => {
    await failOnce();
    assert.equal(p.readyAt, clock.now() + 500);
    const before = inner.calls.length;
    await assert.rejects(p.start(['i-1'], signal), (err: ProviderError) => err.providerCode === 'BackingOff' && err.disposition === 'retry');
    assert.equal(inner.calls.length, before, 'the refused call never reached the provider');
    clock.advance(499);
    await assert.rejects(p.list(signal), /backing off for 1 ms after 1 failed step/);
    clock.advance(1);
    await p.start(['i-1'], signal);
    assert.equal(inner.startsOf('i-1'), 1);
  });

  it('pauses grow with failures in a row, refusals do not count, and one success resets them', async () => {
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      await failOnce();
      delays.push(p.readyAt - clock.now());
      await assert.rejects(p.list(signal), /backing off/);
      clock.advance(p.readyAt - clock.now());
    }
    assert.deepEqual(delays, [500, 1000, 2000, 4000, 4000]);
    assert.deepEqual(logs.filter((e) => e.event === 'pool.backoff').map((e) => e.failures), [1, 2, 3, 4, 5]);
    await p.list(signal);
    assert.ok(p.readyAt <= clock.now());
    await failOnce();
    assert.equal(p.readyAt - clock.now(), 500, 'back to the first pause');
  });

  it('fatal errors and aborted calls do not back off', async () => {
    inner.failNext(new ProviderError('UnauthorizedOperation', 'fatal', 'UnauthorizedOperation'));
    await assert.rejects(p.list(signal), /UnauthorizedOperation/);
    // What the EC2 provider throws when the step's signal fires: a retryable ProviderError.
    const ac = new AbortController();
    ac.abort(new ProviderError('EC2 DescribeInstances failed (aborted)', 'retry', undefined));
    await assert.rejects(p.list(ac.signal), /aborted/);
    assert.ok(p.readyAt <= clock.now());
    assert.equal(logs.filter((e) => e.event === 'pool.backoff').length, 0);
  });
});
