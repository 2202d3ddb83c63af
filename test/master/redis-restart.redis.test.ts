import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createLogger, startRedisServer, systemClock, type RedisServerHandle } from '../../src/lib';
import type { BuildRecord } from '../../src/master';
import { InstanceStore } from '../../src/provisioner';
import { farmConfigRaw, TestFarm } from '../helpers/farm';
import { uniquePrefix } from '../setup/unique';

/**
 * Redis with the append-only file on, SIGKILLed under a running farm and started again on the
 * same port and directory: queued jobs, a build running across the outage, finished build
 * records and instance states all come through, and no job runs twice.
 */
describe('faults: Redis restarted (persistence on) under a running farm', function () {
  this.timeout(60_000);
  let redis: RedisServerHandle;
  let farm: TestFarm | undefined;

  afterEach(async () => {
    await farm?.stop();
    await redis?.stop();
  });

  it('keeps queues, build records and instance states; every job completes exactly once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'spillway-redis-aof-'));
    redis = await startRedisServer({ dir, persistence: true });
    const p = uniquePrefix('rr');
    const raw = farmConfigRaw({ redis: { url: redis.url, queuePrefix: `${p}-bull`, keyPrefix: `${p}-sw` } });
    // Locks outlive the outage, so the build running across it is settled, not rerun.
    Object.assign(raw.builds as object, { lockMs: 10_000 });
    farm = await new TestFarm(raw).start();
    const runs = join(mkdtempSync(join(tmpdir(), 'spillway-runs-')), 'runs.txt');
    await farm.agent({ name: 'rack-1', jobTypes: ['b2g'] });

    const finished = (id: string) => farm!.finished(id);

    // Before: one finished build, one still running, three waiting (nobody serves linux64 yet).
    const done = await farm.submit({ type: 'b2g', shell: `echo done >> ${runs}` });
    await finished(done);
    const running = await farm.submit({ type: 'b2g', shell: `sleep 1; echo "$SPILLWAY_JOB_ID" >> ${runs}` });
    const waiting = await Promise.all([1, 2, 3].map((i) => farm!.submit({ type: 'linux64', shell: `echo "$SPILLWAY_JOB_ID" >> ${runs}; echo w${i}` })));

    // Its connection sees the outage too; ioredis reconnects by itself, the errors are expected.
    const storeRedis = new Redis(redis.url).on('error', () => undefined);
    const store = new InstanceStore({ redis: storeRedis, keyPrefix: `${p}-sw`, clock: systemClock, log: createLogger({ silent: true }) });
    await store.apply('cloud', 'i-0aaa', { type: 'launch' }, { spot: true });
    await store.apply('cloud', 'i-0aaa', { type: 'started' });
    const before = await store.list('cloud');
    const recordsBefore = await farm.api<{ builds: BuildRecord[] }>('/api/builds');

    await redis.stop({ kill: true, keepDir: true });
    redis = await startRedisServer({ dir, port: redis.port, persistence: true });

    // The farm carries on by itself: the running build is settled, the waiting jobs run.
    assert.equal((await finished(running)).result, 'success');
    await farm.agent({ name: 'rack-2', jobTypes: ['linux64'] });
    for (const id of waiting) assert.equal((await finished(id)).result, 'success');

    const lines = readFileSync(runs, 'utf8').trim().split('\n');
    assert.deepEqual(lines.sort(), ['done', running, ...waiting].sort(), 'every build ran exactly once');
    const after = await farm.api<{ builds: BuildRecord[] }>('/api/builds');
    const doneBefore = recordsBefore.builds.find((b) => b.id === done)!;
    assert.deepEqual(after.builds.find((b) => b.id === done), doneBefore, 'the finished record is intact');
    assert.deepEqual(
      (await store.list('cloud')).map(({ id, state, spot, version }) => ({ id, state, spot, version })),
      before.map(({ id, state, spot, version }) => ({ id, state, spot, version })),
      'instance states are intact',
    );
    await store.close();
    await storeRedis.quit();
  });
});
