import assert from 'node:assert/strict';
import { startRedisServer, type RedisServerHandle } from '../../src/lib';
import { farmConfigRaw, TestFarm } from '../helpers/farm';
import { waitUntil } from '../helpers/wait-until';
import { uniquePrefix } from '../setup/unique';

const BOUND_MS = 1000;
/** The deadline, then at most the probe's own bound (1 s, or the deadline if shorter) to say why. */
const ANSWER_WITHIN_MS = 2 * BOUND_MS + 500;
/** What a loaded CI machine may add: the 503 while Redis is stopped is the proof; this only catches a bound far off. */
const SLACK_MS = 8000;

/**
 * A hung Redis (SIGSTOP: connections stay open, nothing answers) is the case a connection
 * flag gets wrong: the client still says "ready". The master must ask, and answer in time.
 */
describe('http: Redis hung (SIGSTOP) under a running master', function () {
  this.timeout(30_000);
  let redis: RedisServerHandle;
  let farm: TestFarm | undefined;

  afterEach(async () => {
    redis?.signal('SIGCONT');
    await farm?.stop();
    await redis?.stop();
  });

  it('healthz 503 (no answer to PING), API calls 503 within the bound; all answers again after SIGCONT', async () => {
    redis = await startRedisServer();
    const p = uniquePrefix('hung');
    const raw = farmConfigRaw({ redis: { url: redis.url, queuePrefix: `${p}-bull`, keyPrefix: `${p}-sw` } });
    (raw.http as Record<string, unknown>).redisTimeoutMs = BOUND_MS;
    farm = await new TestFarm(raw).start();
    const call = async (path: string, init: RequestInit = {}) => {
      const t0 = Date.now();
      const res = await fetch(farm!.addr.httpUrl + path, init);
      return { status: res.status, body: (await res.json()) as Record<string, unknown>, ms: Date.now() - t0 };
    };

    redis.signal('SIGSTOP');
    const health = await call('/healthz');
    assert.equal(health.status, 503);
    assert.equal(health.body.redis, `no answer to PING within ${BOUND_MS}ms`);
    assert.ok(health.ms < BOUND_MS + 500 + SLACK_MS, `healthz took ${health.ms} ms`);
    const post = { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'b2g', argv: ['true'], jobId: 'hung-1' }) };
    for (const [what, answer] of [
      ['POST /api/jobs', await call('/api/jobs', post)],
      ['/api/builds', await call('/api/builds')],
      ['/api/queues', await call('/api/queues')],
    ] as const) {
      assert.equal(answer.status, 503, `${what}: ${JSON.stringify(answer.body)}`);
      assert.equal((answer.body.error as { code: string }).code, 'SPILLWAY_E_REDIS_UNAVAILABLE', what);
      assert.ok(answer.ms < ANSWER_WITHIN_MS + SLACK_MS, `${what} answered after ${answer.ms} ms`);
    }

    redis.signal('SIGCONT');
    await waitUntil(async () => (await call('/healthz')).status === 200, { timeoutMs: 10_000, everyMs: 50, what: 'healthz 200 after SIGCONT' });
    // The timed-out submission may or may not have reached Redis: its jobId makes the retry safe either way.
    const retry = await call('/api/jobs', post);
    assert.ok(retry.status === 201 || retry.status === 200, JSON.stringify(retry.body));
    const again = await call('/api/jobs', post);
    assert.equal(again.status, 200);
  });
});
