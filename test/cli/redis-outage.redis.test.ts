import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startRedisServer, type RedisServerHandle } from '../../src/lib';
import { farmConfigRaw, spawnCli, TestFarm, TOKEN, writeConfigFile, type CliProcess } from '../helpers/farm';
import { waitUntil } from '../helpers/wait-until';
import { uniquePrefix } from '../setup/unique';

const BOUND_MS = 1500;
/**
 * What a loaded CI machine may add to the bound. The proof of "bounded" is the 503 itself: a
 * call that waited for Redis could only answer once the test starts Redis again; this only
 * catches a bound far off what is configured.
 */
const SLACK_MS = 8000;

interface Answer {
  status: number;
  ms: number;
  body: { ok?: boolean; redis?: string; agentListener?: string; error?: { code: string; message: string } };
}

/**
 * Redis stopped under a running master (a real `spillway master` process with a real agent
 * process) and started again: the master says so honestly and quickly, the CLI names Redis,
 * the log stays short, and everything recovers without a restart.
 */
describe('faults: Redis stopped and restarted under a running master process', function () {
  this.timeout(90_000);
  let redis: RedisServerHandle | undefined;
  const procs: CliProcess[] = [];

  afterEach(async () => {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await redis?.stop();
  });

  it('healthz 503 naming redis, API 503 within the bound, submit exits 75 naming Redis, one log line per error kind; all recovers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'spillway-outage-'));
    // The agent process (as root) runs builds as nobody, who must be able to write here.
    const runsDir = mkdtempSync(join(tmpdir(), 'spillway-runs-'));
    chmodSync(runsDir, 0o777);
    const runs = join(runsDir, 'runs.txt');
    redis = await startRedisServer({ dir, persistence: true });
    const p = uniquePrefix('out');
    // A cloud pool that never launches (its backlog threshold is out of reach) brings the queue
    // monitor and the instance store, and their connections, into the outage too.
    const raw = farmConfigRaw({
      redis: { url: redis.url, queuePrefix: `${p}-bull`, keyPrefix: `${p}-sw` },
      log: { format: 'json', level: 'info' },
      pools: { cloud: { provider: 'local', maxInstances: 1 } },
      jobTypes: { b2g: { attempts: 3, overflow: { pool: 'cloud', minBacklog: 1000 } }, linux64: { attempts: 2 } },
    });
    (raw.http as Record<string, unknown>).redisTimeoutMs = BOUND_MS;
    const master = spawnCli(['master', '--config', writeConfigFile(raw)]);
    procs.push(master);
    const [, httpUrl, agentUrl] = /HTTP API (\S+), agents connect to (\S+)/.exec(await master.waitForOutput(/HTTP API (\S+), agents connect to (\S+)/))!;
    const agent = spawnCli(['agent', '--master', agentUrl!, '--name', 'rack-1', '--job-types', 'b2g', '--token', TOKEN, '--log-format', 'json']);
    procs.push(agent);
    await agent.waitForOutput(/agent\.welcomed/);

    const call = async (path: string, init: RequestInit = {}): Promise<Answer> => {
      const t0 = Date.now();
      const res = await fetch(httpUrl + path, init);
      return { status: res.status, body: (await res.json()) as Answer['body'], ms: Date.now() - t0 };
    };
    const submit = (...args: string[]) => {
      const c = spawnCli(['submit', '--master', httpUrl!, '--type', 'b2g', ...args]);
      procs.push(c);
      return c;
    };
    const build = (word: string) => ['--', 'sh', '-c', `echo ${word} >> ${runs}`];

    const healthy = await call('/healthz');
    assert.equal(healthy.status, 200);
    assert.deepEqual(healthy.body, { ok: true, redis: 'ok', agentListener: 'ok' });
    const before = submit('--wait', '--job-id', 'before-1', ...build('before'));
    assert.equal((await before.exited).code, 0, before.output());

    await redis.stop({ keepDir: true });
    const outageFrom = master.output().length;

    const health = await call('/healthz');
    assert.equal(health.status, 503, JSON.stringify(health.body));
    assert.equal(health.body.ok, false);
    assert.match(health.body.redis!, /^unreachable: (connection closed|connect ECONNREFUSED 127\.0\.0\.1:\d+)$/);
    assert.equal(health.body.agentListener, 'ok');
    assert.ok(health.ms < BOUND_MS + SLACK_MS, `healthz took ${health.ms} ms`);

    // Routes on the fail-fast connection answer at once; those on BullMQ's waiting connections at the bound.
    const post = { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'b2g', shell: `echo lost >> ${runs}`, jobId: 'during-1' }) };
    const answers: Array<[string, Answer]> = [['POST /api/jobs', await call('/api/jobs', post)]];
    for (const path of ['/api/jobs/before-1', '/api/jobs/before-1/log?waitMs=0', '/api/builds', '/api/queues', '/api/overview', '/api/pools', '/metrics']) {
      answers.push([path, await call(path)]);
    }
    for (const [what, a] of answers) {
      assert.equal(a.status, 503, `${what}: ${a.status} ${JSON.stringify(a.body)}`);
      assert.equal(a.body.error?.code, 'SPILLWAY_E_REDIS_UNAVAILABLE', what);
      assert.match(a.body.error!.message, /^Redis unavailable: /, what);
      assert.ok(a.ms < BOUND_MS + SLACK_MS, `${what} answered after ${a.ms} ms (bound ${BOUND_MS} ms)`);
    }

    const agents = await call('/api/agents');
    assert.equal(agents.status, 200, 'what the master knows without Redis is still answered');
    assert.deepEqual((agents.body as { agents?: Array<{ name: string }> }).agents?.map((a) => a.name), ['rack-1']);

    const cli = submit('--job-id', 'during-1', ...build('during'));
    assert.equal((await cli.exited).code, 75, cli.output());
    assert.match(cli.output(), /the master at http:\/\/127\.0\.0\.1:\d+ is up but its Redis is unreachable \(unreachable: connect ECONNREFUSED/);
    const status = spawnCli(['status', '--master', httpUrl!]);
    procs.push(status);
    assert.equal((await status.exited).code, 75, status.output());
    assert.match(status.output(), /is up but its Redis is unreachable/);

    const later = await call('/healthz');
    assert.equal(later.status, 503);
    assert.match(later.body.redis!, /^unreachable: connect ECONNREFUSED 127\.0\.0\.1:\d+$/, 'names the cause once a reconnect was refused');

    redis = await startRedisServer({ dir, port: redis.port, persistence: true });
    // Every connection is back within about a second: a late queues connection would let the
    // locks of builds taken on the others lapse (and the builds run twice).
    const restarted = Date.now();
    const admin = new Redis(redis.url);
    const names = ['queues', 'records', 'api'].map((n) => `${p}-sw:master-${n}`);
    const connected = async () => {
      const list = String(await admin.client('LIST'));
      return names.every((n) => list.includes(`name=${n} `));
    };
    await waitUntil(connected, {
      timeoutMs: 10_000,
      everyMs: 20,
      what: 'the master connections back',
    }).finally(() => admin.quit());
    const reconnectMs = Date.now() - restarted;
    assert.ok(reconnectMs < 2000, `the master's connections came back ${reconnectMs} ms after Redis`);
    await waitUntil(async () => (await call('/healthz')).status === 200, { timeoutMs: 15_000, everyMs: 100, what: 'healthz 200 after the restart' });

    // The submission refused during the outage was never queued: retried with its id, it runs once.
    const retried = submit('--wait', '--job-id', 'during-1', ...build('during'));
    assert.equal((await retried.exited).code, 0, retried.output());
    const again = submit('--wait', '--job-id', 'during-1', ...build('during'));
    assert.equal((await again.exited).code, 0, again.output());
    assert.match(again.output(), /job during-1 was submitted before \(completed\); not queued again/);
    const changed = submit('--job-id', 'during-1', ...build('other'));
    assert.equal((await changed.exited).code, 2, changed.output());
    assert.match(changed.output(), /409: job id "during-1" was already submitted with a different payload/);
    assert.equal(readFileSync(runs, 'utf8'), 'before\nduring\n', 'each build ran once; nothing submitted during the outage ran');

    const outage = master
      .output()
      .slice(outageFrom)
      .split('\n')
      .filter((l) => l.trim());
    assert.deepEqual(
      outage.filter((l) => !l.startsWith('{')),
      [],
      'every line is a JSON log line (no stack traces)',
    );
    const entries = outage.map((l) => JSON.parse(l) as Record<string, unknown>);
    const errors = entries.filter((e) => ['queue.error', 'redis.error', 'http.redis-unavailable', 'queue-monitor.redis-error', 'instance.changes-error'].includes(e.event as string));
    const firsts = new Map<string, number>();
    for (const e of errors.filter((x) => x.repeated === undefined)) {
      const error = typeof e.error === 'object' ? (e.error as { message?: string }).message : e.error;
      const kind = `${String(e.event)} ${String(e.queue ?? e.type ?? e.url ?? '')} ${String(error ?? e.reason)}`;
      firsts.set(kind, (firsts.get(kind) ?? 0) + 1);
    }
    for (const [kind, n] of firsts) assert.equal(n, 1, `${kind}: ${n} lines in one window`);
    const folded = errors.filter((e) => typeof e.repeated === 'number');
    assert.ok(folded.some((e) => e.event === 'redis.error' && /^repeated \d+ times in the last \d+s$/.test(String(e.message))), JSON.stringify(errors, null, 1));
    assert.ok(errors.length <= 3 * firsts.size, `${errors.length} error lines for ${firsts.size} kinds`);

    agent.child.kill('SIGTERM');
    master.child.kill('SIGTERM');
    assert.equal((await master.exited).code, 0, master.output().slice(-2000));
  });

  it('a master stopped during an outage, with calls abandoned at their deadline, still stops', async () => {
    redis = await startRedisServer();
    const p = uniquePrefix('outstop');
    const raw = farmConfigRaw({ redis: { url: redis.url, queuePrefix: `${p}-bull`, keyPrefix: `${p}-sw` } });
    (raw.http as Record<string, unknown>).redisTimeoutMs = BOUND_MS;
    const farm = await new TestFarm(raw).start();
    await redis.stop();
    assert.equal((await fetch(`${farm.addr.httpUrl}/api/queues`)).status, 503);
    // QUIT waits behind the abandoned call's queued commands: it used to wait for Redis forever.
    const t0 = Date.now();
    await farm.daemon.stop();
    assert.ok(Date.now() - t0 < 3000 + SLACK_MS, `stopped after ${Date.now() - t0} ms`);
    await farm.stop();
  });

  it('a master with an autoscaled pool stopped during an outage still stops (its loops wait on Redis)', async () => {
    redis = await startRedisServer();
    const p = uniquePrefix('outstop-pool');
    const raw = farmConfigRaw({
      redis: { url: redis.url, queuePrefix: `${p}-bull`, keyPrefix: `${p}-sw` },
      jobTypes: { b2g: { overflow: { pool: 'cloud', minBacklog: 1 } }, linux64: {} },
      pools: { cloud: { provider: 'local', maxInstances: 1, local: { preCreated: 1 } } },
    });
    (raw.http as Record<string, unknown>).redisTimeoutMs = BOUND_MS;
    const farm = await new TestFarm(raw).start();
    await redis.stop();
    assert.equal((await fetch(`${farm.addr.httpUrl}/api/pools`)).status, 503);
    await farm.daemon.stop();
    assert.equal(farm.logs.entries.find((e) => e.event === 'master.stop-forced')?.reason, 'Redis unreachable');
    assert.ok(farm.logs.entries.some((e) => e.event === 'master.stopped'));
    await farm.stop();
  });
});
