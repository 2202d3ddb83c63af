import { strict as assert } from 'node:assert';
import { createLogger, type LogEntry } from '../../src/lib';
import type { NoticeFrame } from '../../src/protocol';
import { ImdsClient, NoticeWatch } from '../../src/slave-agent';
import { FakeClock } from '../fakes/fake-clock';
import { FakeImds } from './fake-imds';

describe('slave-agent/notice-watch (a real HTTP server playing IMDSv2)', () => {
  let imds: FakeImds;
  let clock: FakeClock;
  let entries: LogEntry[];
  let seen: NoticeFrame[];

  function watch(pollMs = 5000): NoticeWatch {
    const log = createLogger({ silent: true, level: 'debug', sink: (e) => entries.push(e) });
    return new NoticeWatch({ imds: new ImdsClient({ baseUrl: imds.url, clock }), clock, log, pollMs, onNotice: (f) => seen.push(f) });
  }

  beforeEach(async () => {
    imds = await new FakeImds().start();
    clock = new FakeClock(Date.parse('2026-03-01T10:00:00Z'));
    entries = [];
    seen = [];
  });
  afterEach(() => imds.stop());

  it('reads nothing while both paths answer 404, with one token for many looks', async () => {
    const w = watch();
    assert.equal(await w.check(), undefined);
    assert.equal(await w.check(), undefined);
    assert.deepEqual(
      imds.requests.map((r) => [r.method, r.url, r.token]),
      [
        ['PUT', '/latest/api/token', undefined],
        ['GET', '/latest/meta-data/spot/instance-action', 'token-1'],
        ['GET', '/latest/meta-data/events/recommendations/rebalance', 'token-1'],
        ['GET', '/latest/meta-data/spot/instance-action', 'token-1'],
        ['GET', '/latest/meta-data/events/recommendations/rebalance', 'token-1'],
      ],
    );
  });

  it('reports a rebalance recommendation, then the interruption, each once', async () => {
    const w = watch();
    imds.rebalance = '{"noticeTime": "2026-03-01T09:58:00Z"}';
    assert.deepEqual(await w.check(), { type: 'notice', notice: 'rebalance', at: Date.parse('2026-03-01T09:58:00Z') });
    assert.equal(await w.check(), undefined);
    imds.instanceAction = '{"action": "terminate", "time": "2026-03-01T10:02:00Z"}';
    assert.deepEqual(await w.check(), { type: 'notice', notice: 'spot-interruption', action: 'terminate', at: Date.parse('2026-03-01T10:02:00Z') });
    assert.equal(await w.check(), undefined);
    assert.deepEqual(
      seen.map((f) => f.notice),
      ['rebalance', 'spot-interruption'],
    );
  });

  it('a notice document it cannot parse still counts as a notice', async () => {
    imds.instanceAction = 'terminate soon';
    assert.deepEqual(await watch().check(), { type: 'notice', notice: 'spot-interruption' });
    assert.ok(entries.some((e) => e.event === 'agent.notice-watch-failed' && /unexpected notice document/.test(String(e.reason))));
  });

  it('asks for a new token when IMDS refuses the old one (401), and a minute before it expires', async () => {
    const w = new NoticeWatch({
      imds: new ImdsClient({ baseUrl: imds.url, clock, tokenTtlSec: 120 }),
      clock,
      log: createLogger({ silent: true }),
      pollMs: 5000,
      onNotice: (f) => seen.push(f),
    });
    await w.check();
    imds.forgetTokens();
    await w.check();
    clock.advance(61_000);
    await w.check();
    const tokens = imds.requests.filter((r) => r.method === 'PUT').length;
    assert.equal(tokens, 3);
    assert.deepEqual(
      imds.requests.filter((r) => r.method === 'GET').map((r) => r.token),
      ['token-1', 'token-1', 'token-1', 'token-2', 'token-2', 'token-3', 'token-3'],
    );
  });

  it('polls on the injected clock and warns once while IMDS is down', async () => {
    await imds.stop();
    const w = watch(5000);
    w.start();
    await clock.sleeping();
    clock.advance(5000);
    await clock.sleeping();
    await w.stop();
    assert.deepEqual(
      entries.filter((e) => e.event === 'agent.notice-watch-failed').map((e) => e.level),
      ['warn', 'debug'],
    );
  });

  it('stops polling once the interruption is read', async () => {
    imds.instanceAction = '{"action": "stop", "time": "2026-03-01T10:02:00Z"}';
    let read!: (f: NoticeFrame) => void;
    const first = new Promise<NoticeFrame>((resolve) => (read = resolve));
    const w = new NoticeWatch({ imds: new ImdsClient({ baseUrl: imds.url, clock }), clock, log: createLogger({ silent: true }), pollMs: 5000, onNotice: read });
    w.start();
    assert.equal((await first).action, 'stop');
    await w.stop();
    assert.equal(clock.pending(), 0, 'no more polling after the interruption');
  });
});
