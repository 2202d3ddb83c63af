/**
 * Dispatch benchmark: enqueue->started latency on an idle farm, throughput of trivial builds,
 * master CPU per build, and the same workload through a bare BullMQ Worker (the ceiling).
 *
 * Everything spillway runs as real processes: the master (`spillway master --config FILE`) and
 * each agent (`spillway agent ...`) are children of this process, so /proc/<pid>/stat gives the
 * master's CPU alone. This process only enqueues and observes through Redis. A private
 * redis-server is started and everything is stopped at the end; the run is bounded.
 *
 *   npm run bench:dispatch            # or: node dist/bench/dispatch.js
 *   BENCH_JOBS=2000 BENCH_SAMPLES=200 BENCH_MASTER_LOG=info BENCH_PROFILE=1 node dist/bench/dispatch.js
 *
 * BENCH_PROFILE=1 runs the master under `node --cpu-prof` and prints where its CPU goes
 * (its CPU figures are then inflated by the profiler and marked as such); BENCH_PROFILE=agents
 * profiles the agents (the first one's profile is printed), BENCH_PROFILE=all both.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Queue, QueueEvents, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { startRedisServer, type RedisServerHandle } from '../src/lib/redis-server';
import { cpuProfilesIn, printProfile } from './cpuprofile';
import { cpuDelta, cpuSnapshot, printCpu, type CpuSnapshot } from './dispatch-cpu';
import { f1, f2, intEnv, machineInfo, machineLine, once, printTable, runBench, say, statsOf, statsRow, type Stats, type TableRow } from './harness';
import { findRedisPid, poll, spawnLogged, stopChild, type LoggedChild } from './procs';

const CLI = resolve(__dirname, '../src/cli/main.js');
const TOKEN = 'bench-token-0123456789';
const TYPE = 'bench';
const CEILING_QUEUE = 'ceiling';

const JOBS = intEnv('BENCH_JOBS', 2000);
const WARMUP = intEnv('BENCH_WARMUP', 100);
const SAMPLES = intEnv('BENCH_SAMPLES', 200);
const AGENTS = intEnv('BENCH_AGENTS', 4);
const MASTER_LOG = (process.env.BENCH_MASTER_LOG ?? 'info') as 'error' | 'warn' | 'info' | 'debug';
/** BENCH_PROFILE=1 (or "master"), "agents" or "all": run those processes under `node --cpu-prof`. */
const PROFILE_WHAT = process.env.BENCH_PROFILE ?? '';
const PROFILE = PROFILE_WHAT === '1' || PROFILE_WHAT === 'master' || PROFILE_WHAT === 'all';
const PROFILE_AGENTS = PROFILE_WHAT === 'agents' || PROFILE_WHAT === 'all';
/** The whole run is killed past this. */
const RUN_BUDGET_MS = intEnv('BENCH_BUDGET_MS', 175_000);
const PHASE_TIMEOUT_MS = 60_000;

const TARGET = { p50Ms: 5, buildsPerSec: 220, masterCpuMs: 2, ratio: 0.8 };

// ---------------------------------------------------------------------------------------------
// Everything this run started, so any exit path can stop it.

const work = mkdtempSync(join(tmpdir(), 'spillway-bench-'));
let redis: RedisServerHandle | undefined;
let master: LoggedChild | undefined;
let agents: LoggedChild[] = [];
const closers: Array<() => Promise<unknown>> = [];

const cleanup = once(async () => {
  await Promise.allSettled(agents.map((a) => stopChild(a)));
  if (master) await stopChild(master, 10_000).catch(() => undefined);
  await Promise.allSettled(closers.splice(0).reverse().map((c) => c()));
  await redis?.stop().catch(() => undefined);
});

function removeWork(): void {
  if (process.env.BENCH_KEEP) say(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// Helpers

function childEnv(): NodeJS.ProcessEnv {
  // The config file must be what the master uses: drop the variables that override it.
  const env = { ...process.env };
  for (const k of ['REDIS_URL', 'SPILLWAY_HTTP_PORT', 'SPILLWAY_AGENT_PORT', 'SPILLWAY_AGENT_TOKEN', 'NODE_OPTIONS']) delete env[k];
  return env;
}

async function startMaster(redisUrl: string, prefix: string): Promise<{ httpUrl: string; agentUrl: string }> {
  const cfgFile = join(work, 'spillway.yaml');
  writeFileSync(
    cfgFile,
    stringify({
      redis: { url: redisUrl, queuePrefix: `${prefix}-bull`, keyPrefix: `${prefix}-sw` },
      http: { host: '127.0.0.1', port: 0 },
      agents: { host: '127.0.0.1', port: 0, token: TOKEN },
      jobTypes: { [TYPE]: { attempts: 1, timeoutSec: 60 } },
      log: { level: MASTER_LOG, format: 'json' },
    }),
  );
  const nodeArgs = PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${join(work, 'prof-master')}`] : [];
  master = spawnLogged('master', process.execPath, [...nodeArgs, CLI, 'master', '--config', cfgFile], join(work, 'master.log'), childEnv());
  const m = master;
  const line = await poll('the master to listen', 20_000, () => {
    if (m.child.exitCode !== null) throw new Error(`master exited (${m.child.exitCode}):\n${m.log().slice(-2000)}`);
    return /HTTP API (http:\/\/\S+), agents connect to (ws:\/\/\S+)/.exec(m.log()) ?? undefined;
  });
  return { httpUrl: line[1]!, agentUrl: line[2]! };
}

async function agentsConnected(httpUrl: string, names: string[]): Promise<boolean> {
  const res = await fetch(`${httpUrl}/api/agents`);
  const body = (await res.json()) as { agents: Array<{ name: string }> };
  const have = new Set(body.agents.map((a) => a.name));
  return body.agents.length === names.length && names.every((n) => have.has(n));
}

async function startAgents(httpUrl: string, agentUrl: string, n: number, executors: number): Promise<void> {
  await Promise.allSettled(agents.map((a) => stopChild(a)));
  const names = Array.from({ length: n }, (_, i) => `bench-x${executors}-${i + 1}`);
  agents = names.map((name) =>
    spawnLogged(
      name,
      process.execPath,
      [...(PROFILE_AGENTS ? ['--cpu-prof', `--cpu-prof-dir=${join(work, `prof-${name}`)}`] : []), CLI, 'agent', '--master', agentUrl, '--token', TOKEN, '--name', name, '--job-types', TYPE, '--executors', String(executors), '--log-level', 'warn'],
      join(work, `${name}.log`),
      childEnv(),
    ),
  );
  await poll(`${n} agents x ${executors} executors to connect`, 20_000, async () => {
    for (const a of agents) if (a.child.exitCode !== null) throw new Error(`agent ${a.name} exited:\n${a.log().slice(-2000)}`);
    return (await agentsConnected(httpUrl, names)) ? true : undefined;
  }, 50);
}

/** CPU of the master and agents this run has up now, and of redis-server. */
const snapshot = (redisPid: number | undefined): CpuSnapshot =>
  cpuSnapshot({ master: master?.child.pid, agents: agents.map((a) => a.child.pid), redis: redisPid });

/**
 * Enqueues `n` jobs with one addBulk and waits until all are completed or failed; returns
 * builds/s from just before the enqueue to the last job's finishedOn (both this machine's clock).
 */
async function burst(queue: Queue, n: number, data: Record<string, unknown>): Promise<{ seconds: number; completed: number; failed: number }> {
  const before = await queue.getJobCounts('completed', 'failed');
  const base = (before.completed ?? 0) + (before.failed ?? 0);
  const jobs = Array.from({ length: n }, () => ({ name: 'build', data, opts: { attempts: 1 } }));
  const t0 = Date.now();
  await queue.addBulk(jobs);
  const counts = await poll(`${n} jobs of ${queue.name} to finish`, PHASE_TIMEOUT_MS, async () => {
    const c = await queue.getJobCounts('completed', 'failed');
    return (c.completed ?? 0) + (c.failed ?? 0) - base >= n ? c : undefined;
  }, 100);
  const [lastC] = await queue.getJobs(['completed'], 0, 0, false);
  const [lastF] = await queue.getJobs(['failed'], 0, 0, false);
  const end = Math.max(lastC?.finishedOn ?? 0, lastF?.finishedOn ?? 0);
  const failed = (counts.failed ?? 0) - (before.failed ?? 0);
  if (failed > 0) say(`${queue.name}: ${failed} of ${n} jobs FAILED, e.g. ${lastF?.failedReason}`);
  return { seconds: (end - t0) / 1000, completed: (counts.completed ?? 0) - (before.completed ?? 0), failed };
}

// ---------------------------------------------------------------------------------------------
// Phases

/**
 * The same workload through a bare BullMQ Worker: concurrency 4, each job spawns `true`.
 * `capture` runs it the way any build runner must: in its own process group, with stdout and
 * stderr read until they close (spillway streams them); without it the output is discarded.
 */
async function ceiling(url: string, prefix: string, redisPid: number | undefined, run: number | string, capture = false) {
  const connection = { url };
  const queue = new Queue(`${CEILING_QUEUE}-${run}`, { connection, prefix });
  closers.push(() => queue.close());
  const worker = new Worker(
    queue.name,
    async () =>
      new Promise<number | null>((res, rej) => {
        const c = capture ? spawn('true', [], { stdio: ['ignore', 'pipe', 'pipe'], detached: true }) : spawn('true', [], { stdio: 'ignore' });
        c.once('error', rej);
        if (!capture) {
          c.once('exit', (code) => res(code));
          return;
        }
        let output = '';
        c.stdout!.on('data', (b: Buffer) => (output += b.toString()));
        c.stderr!.on('data', (b: Buffer) => (output += b.toString()));
        c.once('close', (code) => res(code));
      }),
    { connection, prefix, concurrency: AGENTS },
  );
  closers.push(() => worker.close());
  await worker.waitUntilReady();
  await burst(queue, WARMUP, {});
  const a = snapshot(redisPid);
  const r = await burst(queue, JOBS, {});
  const b = snapshot(redisPid);
  await worker.close();
  return { perSec: r.completed / r.seconds, ...r, cpu: cpuDelta(a, b) };
}

interface LatencySample {
  total: number;
  toDispatch: number;
  dispatchToStart: number;
  run: number;
  settle: number;
}

/** One job at a time on an idle farm: enqueue (job.timestamp) -> the agent's startedAt. */
async function latency(queue: Queue, events: QueueEvents, r: Redis, keyPrefix: string): Promise<LatencySample[]> {
  const out: LatencySample[] = [];
  for (let i = 0; i < SAMPLES + 10; i++) {
    const job = await queue.add('build', { argv: ['true'] }, { attempts: 1 });
    const rv = (await job.waitUntilFinished(events, 10_000)) as { startedAt: number; finishedAt: number };
    if (i < 10) continue; // warm-up
    const done = (await queue.getJob(job.id!)) as Job;
    const attempts = Object.keys(await r.hgetall(`${keyPrefix}:attempts:${TYPE}:${job.id}`));
    const rec = await r.hgetall(`${keyPrefix}:build:${TYPE}:${job.id}:${attempts[attempts.length - 1]}`);
    const dispatchedAt = Number(rec.dispatchedAt);
    out.push({
      total: rv.startedAt - job.timestamp,
      toDispatch: dispatchedAt - job.timestamp,
      dispatchToStart: rv.startedAt - dispatchedAt,
      run: rv.finishedAt - rv.startedAt,
      settle: (done.finishedOn ?? NaN) - rv.finishedAt,
    });
  }
  return out;
}

/** Calls per Redis command so far (INFO commandstats). */
async function commandCalls(r: Redis): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const m of (await r.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out.set(m[1]!, Number(m[2]));
  return out;
}

async function throughput(queue: Queue, redisPid: number | undefined, r: Redis) {
  await burst(queue, WARMUP, { argv: ['true'] });
  const c0 = await commandCalls(r);
  const a = snapshot(redisPid);
  const res = await burst(queue, JOBS, { argv: ['true'] });
  const b = snapshot(redisPid);
  const c1 = await commandCalls(r);
  const n = res.completed + res.failed;
  const cmds = [...c1].map(([k, v]) => [k, (v - (c0.get(k) ?? 0)) / n] as const).filter(([, v]) => v > 0).sort((x, y) => y[1] - x[1]);
  const cpu = cpuDelta(a, b);
  return { perSec: res.completed / res.seconds, ...res, cpu, cmds, masterCpuPerBuild: cpu.master / n };
}

function printCmds(label: string, cmds: ReadonlyArray<readonly [string, number]>): void {
  const total = cmds.reduce((s, [, v]) => s + v, 0);
  console.log(`  Redis commands per build during ${label} (INFO commandstats: all clients, incl. commands inside BullMQ's Lua scripts): ${f1(total)}`);
  console.log(`    ${cmds.slice(0, 12).map(([k, v]) => `${k} ${f2(v)}`).join(', ')}`);
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const t0 = Date.now();
  const machine = machineInfo();
  say(`machine: nproc=${machine.nproc} node=${machine.node} load=${machine.load}; work dir ${work}`);
  redis = await startRedisServer();
  const redisPid = findRedisPid(redis.port);
  const prefix = `bench-${process.pid}`;
  const queuePrefix = `${prefix}-bull`;
  const keyPrefix = `${prefix}-sw`;

  say(`ceiling #1: bare BullMQ Worker, concurrency ${AGENTS}, ${JOBS} jobs of spawn('true')`);
  const ceil1 = await ceiling(redis.url, queuePrefix, redisPid, 1);
  say(`ceiling #1: ${f1(ceil1.perSec)} builds/s`);

  say(`starting master (log level ${MASTER_LOG}${PROFILE ? ', --cpu-prof' : ''}) and ${AGENTS} agents x 1 executor`);
  const addr = await startMaster(redis.url, prefix);
  await startAgents(addr.httpUrl, addr.agentUrl, AGENTS, 1);

  const connection = { url: redis.url };
  const queue = new Queue(TYPE, { connection, prefix: queuePrefix });
  closers.push(() => queue.close());
  const events = new QueueEvents(TYPE, { connection, prefix: queuePrefix });
  closers.push(() => events.close());
  await events.waitUntilReady();
  const r = new Redis(redis.url, { maxRetriesPerRequest: null });
  closers.push(() => r.quit());

  say(`latency: ${SAMPLES} jobs one at a time on an idle farm`);
  const lat = await latency(queue, events, r, keyPrefix);
  const L = statsOf(lat, ['total', 'toDispatch', 'dispatchToStart', 'run', 'settle']);
  say(`latency: p50 ${L.total.p50} ms, p99 ${L.total.p99} ms`);
  // Reading every job's events would cost this process CPU during the throughput runs.
  await events.close();

  say(`throughput: ${JOBS} jobs, ${AGENTS} agents x 1 executor`);
  const t1 = await throughput(queue, redisPid, r);
  say(`throughput 4x1: ${f1(t1.perSec)} builds/s, master ${f2(t1.masterCpuPerBuild)} ms CPU/build`);

  say(`throughput: ${JOBS} jobs, ${AGENTS} agents x 2 executors`);
  await startAgents(addr.httpUrl, addr.agentUrl, AGENTS, 2);
  const t2 = await throughput(queue, redisPid, r);
  say(`throughput 4x2: ${f1(t2.perSec)} builds/s, master ${f2(t2.masterCpuPerBuild)} ms CPU/build`);

  // Again with spillway idle (agents gone, master waiting), so drifting background load hits both sides.
  await Promise.allSettled(agents.map((a) => stopChild(a)));
  say(`ceiling #2`);
  const ceil2 = await ceiling(redis.url, queuePrefix, redisPid, 2);
  say(`ceiling #2: ${f1(ceil2.perSec)} builds/s`);
  // The better of the two: the ratio is then the conservative one.
  const ceil = ceil2.perSec > ceil1.perSec ? ceil2 : ceil1;
  say(`ceiling with output capture`);
  const ceilCap = await ceiling(redis.url, queuePrefix, redisPid, 'capture', true);
  say(`ceiling with output capture: ${f1(ceilCap.perSec)} builds/s`);

  await cleanup();

  // ---- report
  const ratio = t1.perSec / ceil.perSec;
  console.log('');
  console.log('spillway dispatch benchmark');
  console.log(machineLine(machine));
  console.log(`master: real CLI process, log level ${MASTER_LOG}${PROFILE ? ', UNDER --cpu-prof (CPU figures inflated)' : ''}; agents: ${AGENTS} CLI processes (log level warn${PROFILE_AGENTS ? ', UNDER --cpu-prof' : ''})`);
  console.log('');
  console.log(`enqueue -> started on an idle farm (${L.total.n} samples, ms; job.timestamp -> BuildResult.startedAt, same clock):`);
  const row = (name: string, s: Stats) => console.log(statsRow(name, s, 34, { meanFmt: f2 }));
  row('enqueue -> started (total)', L.total);
  row('  enqueue -> dispatched (master)', L.toDispatch);
  row('  dispatched -> started (ws+agent)', L.dispatchToStart);
  row('started -> finished (run `true`)', L.run);
  row('finished -> completed in BullMQ', L.settle);
  console.log('');
  printCpu(`throughput, ${AGENTS} agents x 1`, t1.cpu, t1.completed + t1.failed);
  printCpu(`throughput, ${AGENTS} agents x 2`, t2.cpu, t2.completed + t2.failed);
  printCmds(`throughput, ${AGENTS} agents x 1`, t1.cmds);
  printCpu(`ceiling #1 (bare Worker)`, ceil1.cpu, ceil1.completed + ceil1.failed);
  printCpu(`ceiling #2 (bare Worker)`, ceil2.cpu, ceil2.completed + ceil2.failed);
  printCpu(`ceiling capturing output`, ceilCap.cpu, ceilCap.completed + ceilCap.failed);
  if (PROFILE) for (const f of cpuProfilesIn(join(work, 'prof-master')).slice(0, 1)) printProfile('master', join(work, 'prof-master', f));
  if (PROFILE_AGENTS) {
    const dir = join(work, `prof-bench-x1-1`);
    for (const f of cpuProfilesIn(dir).slice(0, 1)) printProfile('agent bench-x1-1 (4x1 phase + latency)', join(dir, f));
  }
  console.log('');
  const rows: TableRow[] = [
    ['enqueue->started p50 (idle, 4 agents)', `${L.total.p50} ms`, `<= ${TARGET.p50Ms} ms`, L.total.p50 <= TARGET.p50Ms],
    ['enqueue->started p99 (idle, 4 agents)', `${L.total.p99} ms`, '-', undefined],
    [`throughput ${AGENTS} agents x 1 executor`, `${f1(t1.perSec)} builds/s`, `>= ${TARGET.buildsPerSec}/s`, t1.perSec >= TARGET.buildsPerSec],
    [`throughput ${AGENTS} agents x 2 executors`, `${f1(t2.perSec)} builds/s`, '-', undefined],
    [`master CPU per build (${AGENTS}x1)`, `${f2(t1.masterCpuPerBuild)} ms`, `<= ${TARGET.masterCpuMs} ms`, PROFILE ? undefined : t1.masterCpuPerBuild <= TARGET.masterCpuMs],
    [`master CPU per build (${AGENTS}x2)`, `${f2(t2.masterCpuPerBuild)} ms`, '-', undefined],
    [`ceiling: bare BullMQ Worker, concurrency ${AGENTS} (best of 2)`, `${f1(ceil.perSec)} builds/s`, '-', undefined],
    [`throughput ${AGENTS}x1 / ceiling`, f2(ratio), `>= ${TARGET.ratio}`, ratio >= TARGET.ratio],
    [`throughput ${AGENTS}x2 / ceiling`, f2(t2.perSec / ceil.perSec), '-', undefined],
    [`ceiling capturing output (process group + pipes)`, `${f1(ceilCap.perSec)} builds/s`, '-', undefined],
    [`throughput ${AGENTS}x1 / capturing ceiling`, f2(t1.perSec / ceilCap.perSec), '-', undefined],
  ];
  printTable(rows);
  const failed = t1.failed + t2.failed + ceil1.failed + ceil2.failed + ceilCap.failed;
  console.log(`jobs: ${JOBS} per throughput run (+${WARMUP} warm-up), ${failed} failed; nproc ${machine.nproc}, node ${machine.node}; bench took ${f1((Date.now() - t0) / 1000)} s`);
  return failed > 0 ? 1 : 0;
}

runBench(main, {
  budgetMs: RUN_BUDGET_MS,
  cleanup,
  // Only if cleanup hangs: the spillway processes are the ones that could outlive us.
  kill: () => {
    for (const c of [...agents, ...(master ? [master] : [])]) c.child.kill('SIGKILL');
  },
  afterCleanup: removeWork,
  onError: () => {
    for (const c of [...(master ? [master] : []), ...agents]) {
      try {
        process.stderr.write(`--- last output of ${c.name}:\n${c.log().slice(-1500)}\n`);
      } catch {
        // no log
      }
    }
  },
});
