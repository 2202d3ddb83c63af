/**
 * Fleet benchmark: one real `spillway master` process and N fake agents (the protocol over real
 * websockets, bench/fleet-agents.ts) in this process, against a private redis-server.
 *
 * Phase "fleet" (for each N of BENCH_FLEET, default 100,1000): the master's RSS idle (before
 * any agent), BENCH_JOBS (default 100,000) instant builds enqueued while the queue is paused
 * (Redis memory per queued job), N agents connected (RSS), then the queue resumed and drained:
 * jobs/s, master CPU per job (user+sys from /proc, and the sys share: socket writes), the
 * master's peak RSS (VmHWM) and how the jobs spread over the agents.
 *
 * Phase "placement": bursty load on BENCH_CLOUD (default 20) cloud agents with one executor,
 * each "suspended" (disconnected) after BENCH_QUIET_MS without a build and woken (after
 * BENCH_BOOT_MS) when jobs wait and no awake agent is free: the bench plays the provisioner.
 * Run once with `agents.placement.cloud: pack` and once with `spread`; instance-seconds is
 * the time agents were awake. Time is compressed: a quiet period of 2 s stands for 60 min.
 *
 *   npm run bench:fleet                     # or: node dist/bench/fleet.js
 *   BENCH_FLEET=1000 BENCH_JOBS=20000 BENCH_SKIP_PLACEMENT=1 node dist/bench/fleet.js
 *
 * Redis commands per job are INFO commandstats calls during the drain (the commands scripts
 * run included) over the jobs; BENCH_EXECUTORS (default 1) gives each fake agent more executors.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { startRedisServer, type RedisServerHandle } from '../src/lib/redis-server';
import { connectAll, distribution, FakeAgent } from './fleet-agents';
import { f1, f2, intEnv, machineInfo, machineLine, once, runBench, say } from './harness';
import { poll, procCpu, spawnLogged, stopChild, killChildren, type LoggedChild } from './procs';

/** BENCH_CLI runs another build of spillway (e.g. main's, for a before/after in the same conditions). */
const CLI = process.env.BENCH_CLI ?? resolve(__dirname, '../src/cli/main.js');
const TOKEN = 'bench-token-0123456789';
const TYPE = 'bench';
const FLEET = (process.env.BENCH_FLEET ?? '100,1000').split(',').map(Number).filter((n) => n > 0);
const JOBS = intEnv('BENCH_JOBS', 100_000);
const MASTER_LOG = process.env.BENCH_MASTER_LOG ?? 'warn';
const CLOUD = intEnv('BENCH_CLOUD', 20);
const QUIET_MS = intEnv('BENCH_QUIET_MS', 2000);
const BOOT_MS = intEnv('BENCH_BOOT_MS', 300, true);
const RUN_BUDGET_MS = intEnv('BENCH_BUDGET_MS', 600_000);
/** Executors per fake agent in the fleet phase: with more than one, several jobs (and frames) per agent and tick. */
const EXECUTORS = intEnv('BENCH_EXECUTORS', 1);
/** Node flags for the master, e.g. "--max-old-space-size=96" to see how much of its peak is collectable. */
const MASTER_NODE_ARGS = (process.env.BENCH_MASTER_NODE_ARGS ?? '').split(' ').filter(Boolean);

const work = mkdtempSync(join(tmpdir(), 'spillway-fleet-'));
let redis: RedisServerHandle | undefined;
let master: LoggedChild | undefined;
const closers: Array<() => Promise<unknown>> = [];
const cleanup = once(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  if (master) await stopChild(master, 10_000).catch(() => undefined);
  await redis?.stop().catch(() => undefined);
});

/** VmRSS and VmHWM (peak) of a process, MiB. */
function memOf(pid: number | undefined): { rss: number; hwm: number } {
  const s = pid === undefined ? '' : readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? NaN) / 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

async function startMaster(prefix: string, placement: { onprem: string; cloud: string }): Promise<{ agentUrl: string; pid: number }> {
  const cfgFile = join(work, `${prefix}.yaml`);
  writeFileSync(
    cfgFile,
    stringify({
      redis: { url: redis!.url, queuePrefix: `${prefix}-bull`, keyPrefix: `${prefix}-sw` },
      http: { host: '127.0.0.1', port: 0 },
      agents: {
        host: '127.0.0.1',
        port: 0,
        token: TOKEN,
        registrationRate: { burst: 100_000, perMinute: 100_000 },
        // Only when not the default, so an older build (BENCH_CLI) without the key runs too.
        ...((placement.onprem !== 'spread' || placement.cloud !== 'pack') && { placement }),
      },
      jobTypes: { [TYPE]: { attempts: 1, timeoutSec: 60 } },
      log: { level: MASTER_LOG, format: 'json' },
    }),
  );
  const env = { ...process.env };
  for (const k of ['REDIS_URL', 'SPILLWAY_HTTP_PORT', 'SPILLWAY_AGENT_PORT', 'SPILLWAY_AGENT_TOKEN', 'NODE_OPTIONS']) delete env[k];
  const m = spawnLogged('master', process.execPath, [...MASTER_NODE_ARGS, CLI, 'master', '--config', cfgFile], join(work, `${prefix}-master.log`), env);
  master = m;
  const line = await poll('the master to listen', 30_000, () => {
    if (m.child.exitCode !== null) throw new Error(`master exited (${m.child.exitCode}):\n${m.log().slice(-2000)}`);
    return /agents connect to (ws:\/\/\S+)/.exec(m.log()) ?? undefined;
  });
  return { agentUrl: line[1]!, pid: m.child.pid! };
}

async function stopMaster(): Promise<void> {
  if (master) await stopChild(master, 10_000);
  master = undefined;
}

/** Calls per command since the server started (INFO commandstats); commands run by scripts count too. */
async function commandCalls(r: Redis): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const m of (await r.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out.set(m[1]!, Number(m[2]));
  return out;
}

/** Commands per job between two readings, and the five most frequent ("evalsha 3.0, hset 2.0"). */
function commandsPerJob(before: Map<string, number>, after: Map<string, number>, jobs: number): { total: number; top: string } {
  const diff = [...after].map(([k, v]) => [k, (v - (before.get(k) ?? 0)) / jobs] as const).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]);
  return { total: diff.reduce((s, [, v]) => s + v, 0), top: diff.slice(0, 6).map(([k, v]) => `${k} ${f1(v)}`).join(', ') };
}

async function usedMemory(r: Redis): Promise<number> {
  const info = await r.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? NaN);
}

interface FleetResult {
  n: number;
  idleRss: number;
  agentsRss: number;
  peakRss: number;
  jobsPerSec: number;
  cpuMsPerJob: number;
  sysShare: number;
  redisBytesPerJob: number;
  redisCommandsPerJob: number;
  redisTop: string;
  dist: ReturnType<typeof distribution>;
  seconds: number;
}

async function fleetPhase(n: number, run: number): Promise<FleetResult> {
  const prefix = `fleet${run}-${n}`;
  const { agentUrl, pid } = await startMaster(prefix, { onprem: 'spread', cloud: 'pack' });
  await new Promise((r) => setTimeout(r, 2000));
  const idleRss = memOf(pid).rss;
  const connection = new Redis(redis!.url, { maxRetriesPerRequest: null });
  const queue = new Queue(TYPE, { connection, prefix: `${prefix}-bull` });
  await queue.waitUntilReady();
  await queue.pause();
  const before = await usedMemory(connection);
  const data = { argv: ['true'] };
  for (let i = 0; i < JOBS; i += 5000) {
    await queue.addBulk(Array.from({ length: Math.min(5000, JOBS - i) }, () => ({ name: 'build', data, opts: { attempts: 1, removeOnComplete: true } })));
  }
  const redisBytesPerJob = ((await usedMemory(connection)) - before) / JOBS;
  say(`fleet ${n}: ${JOBS} jobs queued (${f1(redisBytesPerJob)} B each in Redis), master idle RSS ${f1(idleRss)} MiB; connecting ${n} agents`);
  const agents = Array.from({ length: n }, (_, i) => new FakeAgent({ url: agentUrl, token: TOKEN, name: `fake-${i}`, location: 'onprem', jobType: TYPE, executors: EXECUTORS, buildMs: 0 }));
  closers.push(async () => Promise.all(agents.map((a) => a.suspend())));
  await connectAll(agents);
  await new Promise((r) => setTimeout(r, 1000));
  const agentsRss = memOf(pid).rss;
  const calls0 = await commandCalls(connection);
  const cpu0 = procCpu(pid)!;
  const t0 = Date.now();
  await queue.resume();
  let lastDone = t0;
  await poll(`${JOBS} jobs to complete`, RUN_BUDGET_MS, async () => {
    const c = await queue.getJobCounts('wait', 'active', 'prioritized', 'delayed', 'failed');
    const left = (c.wait ?? 0) + (c.active ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0);
    if (left > 0) return undefined;
    lastDone = Date.now();
    if (c.failed) say(`fleet ${n}: ${c.failed} jobs FAILED`);
    return true;
  }, 100);
  const cpu1 = procCpu(pid)!;
  const cmds = commandsPerJob(calls0, await commandCalls(connection), JOBS);
  const seconds = (lastDone - t0) / 1000;
  const cpuMs = cpu1.self - cpu0.self;
  const peakRss = memOf(pid).hwm;
  const dist = distribution(agents);
  say(`fleet ${n}: ${f1(JOBS / seconds)} jobs/s, ${f2(cpuMs / JOBS)} ms CPU/job, ${f1(cmds.total)} Redis commands/job (${cmds.top}), peak RSS ${f1(peakRss)} MiB`);
  await Promise.all(agents.map((a) => a.suspend()));
  await queue.close();
  await connection.quit();
  await stopMaster();
  const flush = new Redis(redis!.url);
  await flush.flushall();
  await flush.quit();
  return { n, idleRss, agentsRss, peakRss, jobsPerSec: JOBS / seconds, cpuMsPerJob: cpuMs / JOBS, sysShare: (cpu1.sys - cpu0.sys) / cpuMs, redisBytesPerJob, redisCommandsPerJob: cmds.total, redisTop: cmds.top, dist, seconds };
}

interface PlacementResult {
  policy: string;
  instanceSeconds: number;
  wakes: number;
  jobs: number;
  waitP50: number;
  waitP99: number;
  used: number;
  seconds: number;
}

/**
 * A burst of 40 builds of 200 ms every 5 s, and between bursts one build every 250 ms, for 4
 * bursts; cloud agents suspend after QUIET_MS idle and are woken while builds wait.
 */
async function placementPhase(cloud: 'pack' | 'spread'): Promise<PlacementResult> {
  const prefix = `place-${cloud}`;
  const { agentUrl } = await startMaster(prefix, { onprem: 'spread', cloud });
  const connection = new Redis(redis!.url, { maxRetriesPerRequest: null });
  const queue = new Queue(TYPE, { connection, prefix: `${prefix}-bull` });
  const agents = Array.from({ length: CLOUD }, (_, i) => new FakeAgent({ url: agentUrl, token: TOKEN, name: `cloud-${i}`, location: 'cloud', jobType: TYPE, executors: 1, buildMs: 200, quietMs: QUIET_MS }));
  closers.push(async () => Promise.all(agents.map((a) => a.suspend())));
  // One instance awake at the start, as after a warm minimum of 1.
  await agents[0]!.connect();
  const t0 = Date.now();
  let enqueued = 0;
  const job = () => ({ name: 'build', data: { argv: ['true'], env: { ENQUEUED_AT: String(Date.now()) } }, opts: { attempts: 1, removeOnComplete: true } });
  const waking = new Set<FakeAgent>();
  const provisioner = setInterval(() => {
    void queue.getWaitingCount().then((waiting) => {
      const free = agents.filter((a) => a.idle).length + waking.size;
      const asleep = agents.filter((a) => !a.awake);
      for (const a of asleep.slice(0, Math.max(0, waiting - free))) {
        waking.add(a);
        void a.wake(BOOT_MS).finally(() => waking.delete(a));
      }
    });
  }, 50);
  for (let burst = 0; burst < 4; burst++) {
    await queue.addBulk(Array.from({ length: 40 }, job));
    enqueued += 40;
    for (let t = 0; t < 5000; t += 250) {
      await new Promise((r) => setTimeout(r, 250));
      await queue.add('build', job().data, job().opts);
      enqueued++;
    }
  }
  await poll('the placement load to finish', 60_000, async () => {
    const c = await queue.getJobCounts('wait', 'active');
    return (c.wait ?? 0) + (c.active ?? 0) === 0 ? true : undefined;
  }, 50);
  clearInterval(provisioner);
  const loadEnd = Date.now();
  // Every agent still awake now would be suspended after its quiet period: count it in.
  await poll('every agent to suspend', 30_000, () => (agents.some((a) => a.awake) ? undefined : true), 50);
  const instanceMs = agents.reduce((s, a) => s + a.awakeMs, 0);
  const waits = agents.flatMap((a) => a.waits).sort((a, b) => a - b);
  const pct = (p: number) => waits[Math.min(waits.length - 1, Math.floor((p / 100) * waits.length))] ?? NaN;
  await queue.close();
  await connection.quit();
  await stopMaster();
  return {
    policy: cloud,
    instanceSeconds: instanceMs / 1000,
    wakes: agents.reduce((s, a) => s + a.wakes, 0),
    jobs: enqueued,
    waitP50: pct(50),
    waitP99: pct(99),
    used: agents.filter((a) => a.jobs > 0).length,
    seconds: (loadEnd - t0) / 1000,
  };
}

async function main(): Promise<number> {
  const machine = machineInfo();
  say(machineLine(machine));
  redis = await startRedisServer();
  const fleets: FleetResult[] = [];
  for (const [i, n] of FLEET.entries()) fleets.push(await fleetPhase(n, i));
  const placements: PlacementResult[] = [];
  if (!process.env.BENCH_SKIP_PLACEMENT) for (const p of ['pack', 'spread'] as const) placements.push(await placementPhase(p));
  const loadEnd = machineInfo().load;
  await cleanup();

  console.log('');
  console.log('spillway fleet benchmark');
  console.log(machineLine(machine));
  console.log(`load average at end ${loadEnd}; master log level ${MASTER_LOG}${MASTER_NODE_ARGS.length ? `, master node flags ${MASTER_NODE_ARGS.join(' ')}` : ''}; fake agents in the bench process share the machine with the master and redis`);
  console.log('');
  if (fleets.length) {
    console.log(`fleet: ${JOBS} instant builds queued (paused), then drained by N on-prem fake agents with ${EXECUTORS} executor(s) each`);
    console.log('| N | master RSS idle (no agent) | with N agents | peak (VmHWM) | jobs/s | master CPU/job | of it sys | Redis commands/job | Redis B/queued job | agents used | busiest agent share | jobs per agent p50 / max |');
    console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of fleets) {
      console.log(
        `| ${r.n} | ${f1(r.idleRss)} MiB | ${f1(r.agentsRss)} MiB | ${f1(r.peakRss)} MiB | ${Math.round(r.jobsPerSec)} | ${f2(r.cpuMsPerJob)} ms | ${Math.round(r.sysShare * 100)}% | ${f1(r.redisCommandsPerJob)} | ${Math.round(r.redisBytesPerJob)} | ${r.dist.used} of ${r.n} | ${f2(r.dist.maxShare * 100)}% (${r.dist.busiest}) | ${r.dist.p50} / ${r.dist.max} |`,
      );
    }
    for (const r of fleets) console.log(`Redis commands per job, N = ${r.n}: ${r.redisTop}`);
  }
  if (placements.length) {
    console.log('');
    console.log(`placement: ${CLOUD} cloud agents x 1 executor, quiet period ${QUIET_MS} ms, boot ${BOOT_MS} ms; 4 bursts of 40 builds (200 ms) every 5 s, one build every 250 ms between`);
    console.log('| cloud placement | instance-seconds | wakes | agents used | wait p50 / p99 | jobs | load s |');
    console.log('|---|---|---|---|---|---|---|');
    for (const p of placements) console.log(`| ${p.policy} | ${f1(p.instanceSeconds)} | ${p.wakes} | ${p.used} | ${Math.round(p.waitP50)} / ${Math.round(p.waitP99)} ms | ${p.jobs} | ${f1(p.seconds)} |`);
    const [pack, spread] = placements;
    if (pack && spread) console.log(`pack / spread instance-seconds: ${f2(pack.instanceSeconds / spread.instanceSeconds)}`);
  }
  return 0;
}

runBench(main, {
  budgetMs: RUN_BUDGET_MS + 60_000,
  cleanup,
  kill: killChildren,
  afterCleanup: () => rmSync(work, { recursive: true, force: true }),
});
