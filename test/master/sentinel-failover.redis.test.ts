import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import type { JobView } from '../../src/master';
import { CLI, farmConfigRaw, TestFarm } from '../helpers/farm';
import { startSentinelTopology, type SentinelTopology } from '../helpers/sentinel-topology';
import { waitUntil } from '../helpers/wait-until';
import { uniquePrefix } from '../setup/unique';

const RUNNING = 4;
const WAITING = 6;

/**
 * A master that finds Redis through Sentinel, with real agents, while the primary is SIGKILLed:
 * the sentinels promote the replica, the master's connections (BullMQ's included) follow it,
 * builds that ran across the failover are settled, jobs that waited run, and every job whose
 * submission was acknowledged and replicated before the kill completes exactly once.
 */
describe('faults: the Redis primary killed under a running farm (Sentinel failover)', function () {
  this.timeout(90_000);
  let topology: SentinelTopology | undefined;
  let farm: TestFarm | undefined;

  afterEach(async () => {
    await farm?.stop();
    await topology?.stop();
  });

  it('follows the promoted replica; every acknowledged job completes exactly once; nothing hangs', async () => {
    const t = (topology = await startSentinelTopology());
    const p = uniquePrefix('sf');
    const raw = farmConfigRaw({
      redis: {
        sentinel: { sentinels: t.sentinelAddresses, masterName: t.masterName, password: t.password, sentinelPassword: t.sentinelPassword },
        queuePrefix: `${p}-bull`,
        keyPrefix: `${p}-sw`,
      },
    });
    // Locks outlive the failover (down-after 1 s, then the election), so builds running across
    // it are settled by their holder, not taken for stalled and run again.
    Object.assign(raw.builds as object, { lockMs: 10_000 });
    farm = await new TestFarm(raw).start();
    const f = farm;
    // 1 s down-after + ~3 s election and reconnect fits in half of the 10 s lock.
    assert.ok(!f.logs.entries.some((e) => e.event === 'redis.failover-outlasts-locks'), 'no warning: the locks outlast a failover');
    await f.agent({ name: 'rack-1', jobTypes: ['b2g'], executors: 2 });
    await f.agent({ name: 'rack-2', jobTypes: ['b2g'], executors: 2 });

    const work = mkdtempSync(join(tmpdir(), 'spillway-failover-'));
    const started = join(work, 'started.txt');
    const runs = join(work, 'runs.txt');
    const gate = join(work, 'gate');
    // The first RUNNING builds hold every executor until the gate opens; the rest wait in the queue.
    const build = `echo "$SPILLWAY_JOB_ID" >> ${started}; while [ ! -e ${gate} ]; do sleep 0.02; done; echo "$SPILLWAY_JOB_ID" >> ${runs}`;
    const ids: string[] = [];
    for (let i = 0; i < RUNNING + WAITING; i++) ids.push(await f.submit({ type: 'b2g', shell: build }));
    const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter((l) => l !== '') : []);
    await waitUntil(() => lines(started).length === RUNNING, { timeoutMs: 20_000, what: `${RUNNING} builds running` });
    const running = lines(started);
    // Their starts are in Redis (read back through the API), not only in the master's memory.
    await waitUntil(async () => (await Promise.all(running.map((id) => f.api<JobView>(`/api/jobs/${id}`)))).every((j) => j.startedAt !== null), {
      timeoutMs: 10_000,
      what: 'the running builds recorded as started',
    });

    // Acknowledged is not durable: the primary answers before its replica has the write. WAIT
    // after a write of our own returns once the replica holds everything written before it
    // (the stream is ordered): the submissions and the starts. Only that survives the kill.
    const admin = t.primary.client();
    await admin.set(`${p}-barrier`, '1');
    assert.equal(await admin.call('WAIT', '1', '5000'), 1, 'the replica acknowledged the writes so far');
    admin.disconnect();
    const oldPort = t.primary.port;
    assert.equal(await t.primaryPort(), oldPort);

    await t.primary.kill();
    // Builds finish during the failover: their results wait in the master for the new primary.
    writeFileSync(gate, '');
    // A submission while no primary answers is refused within its bound or accepted, never hung.
    const during = Date.now();
    const res = await fetch(`${f.addr.httpUrl}/api/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'b2g', shell: build }),
    });
    assert.ok(Date.now() - during < f.config.http.redisTimeoutMs + 2000, `the API answered within its bound (${Date.now() - during} ms)`);
    assert.ok(res.status === 503 || res.status === 201, `503 or 201 during the failover, got ${res.status}`);
    if (res.status === 201) ids.push(((await res.json()) as { id: string }).id);

    await t.waitForPrimary(t.replica.port, 30_000);
    for (const id of ids) assert.equal((await f.finished(id)).result, 'success', id);
    // After the failover the API takes submissions again, on the new primary.
    const after = await f.submit({ type: 'b2g', shell: build });
    assert.equal((await f.finished(after)).result, 'success');
    ids.push(after);

    const ran = lines(runs);
    assert.deepEqual([...ran].sort(), [...ids].sort(), 'every acknowledged job ran, and exactly once');
    // Settled in the new primary too: completed jobs are out of BullMQ's active list, so no
    // lock expiring later can hand one out again.
    const queue = new Queue('b2g', { connection: { host: '127.0.0.1', port: t.replica.port, password: t.password }, prefix: `${p}-bull` });
    try {
      const states = await Promise.all(ids.map((id) => queue.getJobState(id)));
      assert.deepEqual(states, ids.map(() => 'completed'));
      assert.equal(await queue.getActiveCount(), 0);
      assert.equal(await queue.getWaitingCount(), 0);
    } finally {
      await queue.close();
    }
    for (const id of ids) {
      const view = await f.api<JobView>(`/api/jobs/${id}`);
      assert.equal(view.state, 'completed', id);
      assert.deepEqual(
        view.builds.map((b) => b.result),
        ['success'],
        `${id}: one build record`,
      );
    }
    // The master saw its connections move: the failover is in its log, not only in Redis's.
    const moved = f.logs.entries.filter((e) => e.event === 'redis.primary-changed');
    assert.ok(moved.length > 0, 'redis.primary-changed logged');
    assert.ok(moved.every((e) => String(e.to).endsWith(`:${t.replica.port}`)), JSON.stringify(moved.slice(0, 2)));
  });

  it('keeps the overflow machinery (queue monitor, instance states, provisioner) working after a failover', async () => {
    const t = (topology = await startSentinelTopology());
    const p = uniquePrefix('sfa');
    const raw = farmConfigRaw({
      redis: { sentinel: { sentinels: t.sentinelAddresses, masterName: t.masterName, password: t.password, sentinelPassword: t.sentinelPassword }, queuePrefix: `${p}-bull`, keyPrefix: `${p}-sw` },
      pools: { cloud: { provider: 'local', maxInstances: 1, quietPeriodMin: 10, bootTimeoutSec: 30, suspend: 'stop', local: { bootDelayMs: 100 } } },
    });
    (raw.jobTypes as Record<string, Record<string, unknown>>).b2g!.overflow = { pool: 'cloud', minBacklog: 1 };
    farm = await new TestFarm(raw, { agentCommand: [process.execPath, CLI] }).start();
    const f = farm;
    await f.logs.waitFor((e) => e.event === 'queue-monitor.started');
    // The farm's 3 s locks are renewed every 1.5 s: a failover (1 s down-after + the election) can outlast one.
    const warned = f.logs.entries.find((e) => e.event === 'redis.failover-outlasts-locks');
    assert.equal(warned?.downAfterMs, 1000);
    assert.equal(warned?.lockMs, 3000);
    const provisioned = (from: number) => f.logs.entries.slice(from).some((e) => e.event === 'instance.launching' || e.event === 'instance.waking');
    assert.ok(!provisioned(0), 'no instance before the failover');
    const killedAt = f.logs.entries.length;

    await t.primary.kill();
    await t.waitForPrimary(t.replica.port, 30_000);
    // The only capacity for b2g is the cloud pool: the job runs only if the backlog is seen, the
    // instance's states are written and a local instance is started, all on the new primary.
    // The same client-chosen id on each try: a submission that timed out is not queued twice.
    const jobId = `${p}-after-failover`;
    await waitUntil(
      async () => {
        const res = await fetch(`${f.addr.httpUrl}/api/jobs`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ type: 'b2g', jobId, shell: 'echo built in the cloud' }),
        }).catch(() => undefined);
        return res?.status === 201 || res?.status === 200;
      },
      { timeoutMs: 15_000, everyMs: 100, what: 'a submission accepted by the new primary' },
    );
    assert.equal((await f.finished(jobId)).result, 'success');
    const view = await f.api<JobView>(`/api/jobs/${jobId}`);
    assert.equal(view.location, 'cloud');
    assert.match(view.instanceId ?? '', /^local-cloud-\d$/);
    assert.ok(provisioned(killedAt), 'the provisioner acted after the failover');
  });
});
