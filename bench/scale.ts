/**
 * Scale benchmark: how fast a backlog over an overflow threshold becomes a start call, how
 * fast a woken instance runs the job that woke it, and whether two masters ever start the
 * same instance twice.
 *
 * Phase 1+2 run an in-process `Master` (src/master) with a `local` pool of pre-created,
 * stopped instances whose agents are real `spillway agent` processes (started by the
 * LocalProvider after its simulated boot delay), no on-prem agents, and one job type that
 * overflows into the pool at a backlog of 1. One job at a time is enqueued with a plain BullMQ
 * Queue; each sample wakes a fresh, never-booted instance (suspend mode `terminate` retires it
 * after the quiet period, so the next backlog cannot be absorbed by it and every sample is a
 * cold boot), and the next sample starts only once that instance is suspended and its agent
 * gone. Timestamps: job.timestamp (enqueue, this process's clock) -> the `instance.waking`
 * log entry (logged right before provider.start; seen through the logger's sink) and the
 * LocalProvider.start call itself (wrapped here on the prototype, src untouched) -> the build
 * record's startedAt (the agent's clock, same machine).
 *
 * Phase 3 runs two `Provisioner`s (src/provisioner) in-process, each with its own Redis
 * connection and InstanceStore over one keyspace (two masters), one shared counting provider,
 * N suspended instances seeded with `adopt`, a backlog of 20 waiting jobs, kicked 20 times each
 * concurrently; it counts start calls per instance. The same is repeated with two bare
 * PoolScalers whose pool lock lets everyone in, so only the atomic claim stands between them.
 *
 * Also reported, because they decide what a wake costs: how many instances one single-job
 * backlog starts (each sample should start exactly one), and how many jobs the master took
 * and gave back unrun (JobTypeQueue.giveBack, counted through a prototype wrapper).
 *
 * A private redis-server is started; everything is stopped at the end; the run is bounded
 * (BENCH_BUDGET_MS, default 170 s; the wake phase stops taking samples at BENCH_WAKE_BUDGET_MS).
 * BENCH_DEBUG=1 prints the log of the first samples that started more than one instance.
 *
 *   npm run bench:scale                 # or: node dist/bench/scale.js
 *   BENCH_SAMPLES=50 BENCH_BOOT_DELAY_MS=50 BENCH_ROUNDS=5 node dist/bench/scale.js
 */
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { parseConfig, type Config } from '../src/config';
import { createLogger, startRedisServer, systemClock, type LogEntry, type RedisServerHandle } from '../src/lib';
import { Master, type BuildRecord } from '../src/master';
import { JobTypeQueue } from '../src/master/job-type-queue';
import {
  InstanceStore,
  LocalProvider,
  PoolScaler,
  Provisioner,
  RuleBook,
  WarmWindows,
  type InstanceRecord,
  type PoolLock,
} from '../src/provisioner';
import { poll } from './procs';
import { CountingProvider, EmptyFleet, FixedBacklog } from './scale-fakes';

const CLI = resolve(__dirname, '../src/cli/main.js');
const TOKEN = 'bench-token-0123456789';
const TYPE = 'bench';
const POOL = 'cloud';

const SAMPLES = intEnv('BENCH_SAMPLES', 40);
const WARMUP = intEnv('BENCH_WARMUP', 2);
const BOOT_DELAY_MS = intEnv('BENCH_BOOT_DELAY_MS', 50, true);
/** Phase 1+2 stops taking samples past this (the samples taken so far are reported). */
const WAKE_PHASE_BUDGET_MS = intEnv('BENCH_WAKE_BUDGET_MS', 110_000);
const ROUNDS = intEnv('BENCH_ROUNDS', 5);
const MM_INSTANCES = intEnv('BENCH_MM_INSTANCES', 30);
const MM_DEMAND = intEnv('BENCH_MM_DEMAND', 20);
const MM_KICKS = intEnv('BENCH_MM_KICKS', 20);
const MM_START_DELAY_MS = intEnv('BENCH_MM_START_DELAY_MS', 20, true);
/** The whole run is stopped past this. */
const RUN_BUDGET_MS = intEnv('BENCH_BUDGET_MS', 170_000);

const TARGET = { wakeP99Ms: 250, startsPerInstance: 1 };

function intEnv(name: string, dflt: number, zeroOk = false): number {
  const v = Number(process.env[name]);
  return process.env[name] !== undefined && Number.isInteger(v) && (v > 0 || (zeroOk && v === 0)) ? v : dflt;
}

const say = (s: string) => process.stderr.write(`[bench] ${s}\n`);

// ---------------------------------------------------------------------------------------------
// Everything this run started, so any exit path can stop it.

let redis: RedisServerHandle | undefined;
const closers: Array<() => Promise<unknown>> = [];
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
    await redis?.stop().catch(() => undefined);
  })();
  return cleaning;
}

/** Pids of this process's children (the agents the LocalProvider spawned, redis-server). */
function childPids(): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

function killChildren(): void {
  for (const pid of childPids()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

const watchdog = setTimeout(() => {
  say(`run budget of ${RUN_BUDGET_MS} ms exceeded: stopping everything`);
  const hard = setTimeout(() => {
    killChildren();
    process.exit(3);
  }, 15_000);
  void cleanup().finally(() => {
    clearTimeout(hard);
    killChildren();
    process.exit(3);
  });
}, RUN_BUDGET_MS);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    say(`${sig}: stopping everything`);
    void cleanup().finally(() => {
      killChildren();
      process.exit(130);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Helpers

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

function stats(xs: number[]) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return { n: s.length, min: s[0] ?? NaN, p50: pct(s, 50), p90: pct(s, 90), p99: pct(s, 99), max: s[s.length - 1] ?? NaN, mean };
}

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : 'n/a');
const ms = (n: number) => (Number.isFinite(n) ? `${Math.round(n)} ms` : 'n/a');

interface TimedEntry extends LogEntry {
  /** When the sink received it (Date.now()). */
  at: number;
}

/** A logger whose entries are kept (with the time they arrived) and can be waited for. */
function captureLogs(level: 'info' | 'debug' = 'info') {
  const entries: TimedEntry[] = [];
  const waiters: Array<{ from: number; pred: (e: TimedEntry) => boolean; resolve: (e: TimedEntry) => void }> = [];
  const log = createLogger({
    level,
    silent: true,
    sink: (e) => {
      const t: TimedEntry = { ...e, at: Date.now() };
      entries.push(t);
      const idx = entries.length - 1;
      for (const w of [...waiters]) {
        if (idx >= w.from && w.pred(t)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(t);
        }
      }
    },
  });
  const find = (from: number, pred: (e: TimedEntry) => boolean) => entries.slice(from).find(pred);
  return {
    log,
    entries,
    find,
    /** The first entry at index >= from matching, already logged or future. */
    waitFrom(from: number, what: string, timeoutMs: number, pred: (e: TimedEntry) => boolean): Promise<TimedEntry> {
      const hit = find(from, pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const w = {
          from,
          pred,
          resolve: (e: TimedEntry) => {
            clearTimeout(timer);
            resolve(e);
          },
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Phase 1+2: backlog -> wake -> first job started, one in-process master, real agent processes

interface WakeSample {
  /** job.timestamp -> `instance.waking` entry. */
  toWakeLog: number;
  /** job.timestamp -> LocalProvider.start called. */
  toStartCall: number;
  /** `instance.waking` -> the build's startedAt (on the woken instance). */
  wakeToStarted: number;
  wakeToBooted: number;
  bootedToRegistered: number;
  registeredToDispatched: number;
  dispatchedToStarted: number;
  /** Instances woken for this one-job backlog. */
  woken: number;
  ranOnWoken: boolean;
}

async function wakePhase(redisUrl: string, prefix: string) {
  // Each sample retires the instance(s) it woke; room for two per sample (see the report).
  const instances = intEnv('BENCH_INSTANCES', 2 * (WARMUP + SAMPLES) + 10);
  const raw = {
    redis: { url: redisUrl, queuePrefix: `${prefix}-bull`, keyPrefix: `${prefix}-sw` },
    http: { host: '127.0.0.1', port: 0 },
    agents: { host: '127.0.0.1', port: 0, token: TOKEN, heartbeatSec: 1, lostAfterSec: 5, helloTimeoutSec: 5 },
    jobTypes: { [TYPE]: { attempts: 1, timeoutSec: 60, overflow: { pool: POOL, minBacklog: 1 } } },
    pools: {
      [POOL]: {
        provider: 'local',
        maxInstances: instances,
        quietPeriodMin: 0.005,
        bootTimeoutSec: 30,
        suspend: 'terminate',
        local: { bootDelayMs: BOOT_DELAY_MS, preCreated: instances },
      },
    },
  };
  const config = parseConfig(raw, {});
  const logs = captureLogs('info');

  // The provider's start call itself, observed without editing src: wrap the prototype.
  const startCalls: Array<{ at: number; ids: string[] }> = [];
  const origStart = LocalProvider.prototype.start;
  LocalProvider.prototype.start = function (this: LocalProvider, ids: readonly string[]) {
    startCalls.push({ at: Date.now(), ids: [...ids] });
    return origStart.call(this, ids);
  };
  closers.push(async () => {
    LocalProvider.prototype.start = origStart;
  });

  // Jobs the master took and returned to the queue unrun (counted, not changed).
  const givenBack: Array<{ at: number; jobId: string; agents: number }> = [];
  const origGiveBack = JobTypeQueue.prototype.giveBack;
  let registrySize = () => 0;
  JobTypeQueue.prototype.giveBack = function (this: JobTypeQueue, jobId: string, token: string) {
    givenBack.push({ at: Date.now(), jobId, agents: registrySize() });
    return origGiveBack.call(this, jobId, token);
  };
  closers.push(async () => {
    JobTypeQueue.prototype.giveBack = origGiveBack;
  });

  const master = new Master({ config, log: logs.log, agentCommand: [process.execPath, CLI] });
  registrySize = () => master.registry.list().length;
  let stopped = false;
  closers.push(async () => {
    if (!stopped) await master.stop();
  });
  await master.start();
  const finished = new Map<string, BuildRecord>();
  const finishWaiters = new Map<string, (r: BuildRecord) => void>();
  master.dispatcher.on('build-finished', (rec) => {
    finished.set(rec.id, rec);
    finishWaiters.get(rec.id)?.(rec);
  });
  const waitFinished = (id: string, timeoutMs: number) =>
    new Promise<BuildRecord>((resolve, reject) => {
      const have = finished.get(id);
      if (have) return resolve(have);
      const timer = setTimeout(() => {
        finishWaiters.delete(id);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for job ${id} to finish`));
      }, timeoutMs);
      finishWaiters.set(id, (r) => {
        clearTimeout(timer);
        finishWaiters.delete(id);
        resolve(r);
      });
    });

  // When each instance's agent connected (the registry's 'added', before any dispatch to it).
  const addedAt = new Map<string, number>();
  master.registry.on('added', (a) => a.instanceId && addedAt.set(a.instanceId, Date.now()));
  // A read-only view of the pool's instances, straight from Redis.
  const reader = new Redis(redisUrl, { maxRetriesPerRequest: null });
  closers.push(() => reader.quit());
  const store = new InstanceStore({ redis: reader, keyPrefix: config.redis.keyPrefix, clock: systemClock });
  closers.push(() => store.close());
  const quiet = async () => {
    if (master.registry.list().length > 0) return undefined;
    const list = await store.list(POOL);
    return list.every((r) => r.state === 'suspended' || r.state === 'terminated') ? true : undefined;
  };

  const queue = new Queue(TYPE, { connection: { url: redisUrl }, prefix: config.redis.queuePrefix });
  closers.push(() => queue.close());
  await queue.waitUntilReady();

  await logs.waitFrom(0, 'the pool to adopt its instances', 10_000, (e) => e.event === 'instance.adopted');

  const samples: WakeSample[] = [];
  const errors: string[] = [];
  const deadline = Date.now() + WAKE_PHASE_BUDGET_MS;
  let cycleMs = 0;
  for (let i = 0; i < WARMUP + SAMPLES; i++) {
    if (Date.now() + cycleMs * 1.5 > deadline) {
      say(`wake phase: budget reached after ${samples.length} samples`);
      break;
    }
    const c0 = Date.now();
    const sampleMark = logs.entries.length;
    try {
      // The previous instances must be gone (no agent connected, none starting or up), or
      // their executors would absorb the backlog.
      await poll('the pool to be all suspended/terminated and no agent connected', 20_000, quiet, 5);
      const mark = logs.entries.length;
      const callMark = startCalls.length;
      const job = await queue.add('build', { argv: ['true'] }, { attempts: 1 });
      const enq = job.timestamp;
      const wake = await logs.waitFrom(mark, 'instance.waking', 10_000, (e) => e.event === 'instance.waking');
      const ids = wake.instanceIds as string[];
      const rec = await waitFinished(job.id!, 30_000);
      const call = startCalls.slice(callMark).find((c) => c.ids.includes(ids[0]!));
      const booted = logs.find(mark, (e) => e.event === 'instance.booted' && ids.includes(e.instanceId as string));
      const registeredAt = addedAt.get(ids[0]!) ?? NaN;
      // Retired after the quiet period; its agent exits and disconnects.
      await logs.waitFrom(mark, `instance ${ids.join(',')} to be suspended`, 20_000, (e) => e.event === 'instance.suspended' && ids.includes(e.instanceId as string));
      const woken = logs.entries
        .slice(mark)
        .reduce((n, e) => n + (e.event === 'instance.waking' ? (e.instanceIds as string[]).length : e.event === 'instance.launching' ? Number(e.count) : 0), 0);
      if (process.env.BENCH_DEBUG && woken !== 1 && i < 3) {
        say(`sample ${i}: woke ${woken}: ${logs.entries.slice(mark).filter((e) => e.event === 'instance.waking').map((e) => JSON.stringify(e.instanceIds)).join(' ')}`);
        if (i === 1) for (const e of logs.entries.slice(sampleMark)) say(`  ${e.at - enq} ${e.event} ${JSON.stringify({ ...e, level: undefined, event: undefined, at: undefined, component: undefined }).slice(0, 300)}`);
      }
      if (i < WARMUP) continue;
      const startedAt = rec.startedAt ?? NaN;
      samples.push({
        toWakeLog: wake.at - enq,
        toStartCall: (call?.at ?? NaN) - enq,
        wakeToStarted: startedAt - wake.at,
        wakeToBooted: (booted?.at ?? NaN) - wake.at,
        bootedToRegistered: registeredAt - (booted?.at ?? NaN),
        registeredToDispatched: rec.dispatchedAt - registeredAt,
        dispatchedToStarted: startedAt - rec.dispatchedAt,
        woken,
        ranOnWoken: rec.instanceId !== null && ids.includes(rec.instanceId),
      });
      if (rec.result !== 'success') errors.push(`job ${job.id}: result ${rec.result} (${rec.reason ?? ''})`);
    } catch (err) {
      errors.push((err as Error).message);
      say(`wake sample ${i}: ${(err as Error).message}`);
      if (process.env.BENCH_DEBUG) for (const e of logs.entries.slice(sampleMark)) say(`  ${e.at - c0} ${e.level} ${e.event} ${JSON.stringify({ ...e, level: undefined, event: undefined, at: undefined, component: undefined }).slice(0, 240)}`);
      if (errors.length >= 3) break;
    } finally {
      cycleMs = Math.max(cycleMs, Date.now() - c0);
    }
    if ((i + 1) % 10 === 0) say(`wake phase: ${i + 1} of ${WARMUP + SAMPLES} (cycle ${cycleMs} ms max)`);
  }
  // Agents that said hello again after their instance was suspended (retired), and builds
  // that needed more than one attempt although every job was given attempts: 1.
  const retiredAt = new Map<string, number>();
  const helloAfterRetire: string[] = [];
  for (const [idx, e] of logs.entries.entries()) {
    if (e.event === 'instance.suspended') retiredAt.set(e.instanceId as string, idx);
    if (e.event === 'agent.registered' && retiredAt.has(e.instanceId as string)) helloAfterRetire.push(`${e.instanceId as string} (+${e.at - logs.entries[retiredAt.get(e.instanceId as string)!]!.at} ms)`);
  }
  const attempts = [...finished.values()].map((r) => r.attempt);
  const retriedBuilds = attempts.filter((a) => a > 1).length;
  const notes = {
    helloAfterRetire,
    retriedBuilds,
    givenBack: givenBack.length,
    givenBackNoAgent: givenBack.filter((g) => g.agents === 0).length,
    dispatches: logs.entries.filter((e) => e.event === 'job.dispatched').length,
    jobs: finished.size,
    lost: logs.entries.filter((e) => e.event === 'job.retried' || e.event === 'job.failed' || e.event === 'agent.lost').map((e) => `${e.event} ${JSON.stringify(e).slice(0, 200)}`),
  };
  const failures = logs.entries.filter((e) => e.level === 'error' || e.event === 'instance.wake-failed' || e.event === 'instance.boot-timeout' || e.event === 'instance.exited');
  for (const f of failures.slice(0, 5)) errors.push(`log ${f.level} ${f.event}: ${JSON.stringify(f).slice(0, 300)}`);
  stopped = true;
  await master.stop();
  await queue.close();
  LocalProvider.prototype.start = origStart;
  JobTypeQueue.prototype.giveBack = origGiveBack;
  return { samples, errors, cycleMs, instances, notes };
}

// ---------------------------------------------------------------------------------------------
// Phase 3: two masters, one keyspace, a backlog of 20: start calls per instance

function mmConfig(redisUrl: string, prefix: string): Config {
  return parseConfig(
    {
      redis: { url: redisUrl, queuePrefix: `${prefix}-bull`, keyPrefix: `${prefix}-sw` },
      agents: { token: TOKEN },
      jobTypes: { [TYPE]: { overflow: { pool: POOL, minBacklog: 1 } } },
      pools: { [POOL]: { provider: 'local', maxInstances: MM_INSTANCES, bootTimeoutSec: 300, quietPeriodMin: 60, local: { preCreated: 0 } } },
    },
    {},
  );
}

async function seed(store: InstanceStore, ids: readonly string[]): Promise<void> {
  const now = Date.now();
  for (const id of ids) {
    const r = await store.adopt(POOL, { id, pool: POOL, state: 'suspended', since: now, version: 0, privateIp: null, spot: false, hibernated: false, agent: null, lastJobEndedAt: null, reason: 'seeded by the bench' });
    if (!r.ok) throw new Error(`seeding ${id}: ${r.reason}`);
  }
}

interface MasterSide {
  redis: Redis;
  store: InstanceStore;
  logs: ReturnType<typeof captureLogs>;
}

async function side(redisUrl: string, keyPrefix: string): Promise<MasterSide> {
  const r = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const logs = captureLogs('info');
  const store = new InstanceStore({ redis: r, keyPrefix, clock: systemClock, log: logs.log });
  return { redis: r, store, logs };
}

async function closeSide(s: MasterSide): Promise<void> {
  await s.store.close();
  await s.redis.quit().catch(() => s.redis.disconnect());
}

const jitter = (maxMs: number) => new Promise((r) => setTimeout(r, Math.random() * maxMs));

async function waitBooting(store: InstanceStore, n: number): Promise<InstanceRecord[]> {
  return poll(`${n} instances booting`, 10_000, async () => {
    const list = await store.list(POOL);
    return list.filter((r) => r.state === 'booting').length >= n ? list : undefined;
  }, 5);
}

interface MmRound {
  total: number;
  maxPer: number;
  instancesStarted: number;
  booting: number;
  launches: number;
  errors: string[];
  ms: number;
}

function summarise(provider: CountingProvider, list: InstanceRecord[], errs: string[], t0: number): MmRound {
  return {
    total: provider.totalStarts(),
    maxPer: provider.maxStartsPerInstance(),
    instancesStarted: provider.starts.size,
    booting: list.filter((r) => r.state === 'booting').length,
    launches: provider.launches,
    errors: errs,
    ms: Date.now() - t0,
  };
}

/** Two Provisioners (pool lock + claim), kicked concurrently. */
async function mmRound(redisUrl: string, prefix: string): Promise<MmRound> {
  const config = mmConfig(redisUrl, prefix);
  const keyPrefix = config.redis.keyPrefix;
  const ids = Array.from({ length: MM_INSTANCES }, (_, i) => `i-${String(i + 1).padStart(4, '0')}`);
  const provider = new CountingProvider(ids, MM_START_DELAY_MS);
  const a = await side(redisUrl, keyPrefix);
  const b = await side(redisUrl, keyPrefix);
  const sides = [a, b];
  const provisioners: Provisioner[] = [];
  try {
    await seed(a.store, ids);
    const backlog = new FixedBacklog(TYPE, MM_DEMAND);
    const fleet = new EmptyFleet();
    for (const s of sides) {
      provisioners.push(
        new Provisioner({
          config,
          redis: s.redis,
          instances: s.store,
          providers: new Map([[POOL, provider]]),
          fleet,
          backlog,
          rules: new RuleBook(s.redis, keyPrefix, config),
          clock: systemClock,
          log: s.logs.log,
          tickMs: 20,
        }),
      );
    }
    const t0 = Date.now();
    // Both loops start and every kick lands at a random point of some tick.
    await Promise.all([
      ...provisioners.map(async (p) => {
        await jitter(2);
        p.start();
      }),
      ...Array.from({ length: MM_KICKS }, () => provisioners.map(async (p) => {
        await jitter(10);
        p.kick();
      })).flat(),
    ]);
    await waitBooting(a.store, Math.min(MM_DEMAND, MM_INSTANCES));
    // Some more ticks on both sides: a late second waker would show up here.
    await new Promise((r) => setTimeout(r, 300));
    const list = await a.store.list(POOL);
    const errs = sides.flatMap((s) => s.logs.entries.filter((e) => e.level === 'error').map((e) => `${e.event}: ${JSON.stringify(e).slice(0, 200)}`));
    return summarise(provider, list, errs, t0);
  } finally {
    await Promise.allSettled(provisioners.map((p) => p.stop()));
    for (const s of sides) await closeSide(s);
  }
}

/** Two bare PoolScalers whose lock lets everyone in: only claimWake separates them. */
async function mmRoundNoLock(redisUrl: string, prefix: string): Promise<MmRound> {
  const config = mmConfig(redisUrl, prefix);
  const keyPrefix = config.redis.keyPrefix;
  const pool = config.pools[POOL]!;
  const ids = Array.from({ length: MM_INSTANCES }, (_, i) => `i-${String(i + 1).padStart(4, '0')}`);
  const provider = new CountingProvider(ids, MM_START_DELAY_MS);
  const a = await side(redisUrl, keyPrefix);
  const b = await side(redisUrl, keyPrefix);
  const sides = [a, b];
  const open: PoolLock = { run: async (_pool, fn) => (await fn(), true) };
  const warm = new WarmWindows(pool);
  try {
    await seed(a.store, ids);
    const backlog = new FixedBacklog(TYPE, MM_DEMAND);
    const fleet = new EmptyFleet();
    const rules = await new RuleBook(a.redis, keyPrefix, config).rules();
    const scalers = sides.map(
      (s) =>
        new PoolScaler({ name: POOL, config: pool, jobTypes: [TYPE], provider, instances: s.store, lock: open, fleet, backlog, warm, clock: systemClock, log: s.logs.log }),
    );
    const t0 = Date.now();
    const signal = new AbortController().signal;
    await Promise.all(
      Array.from({ length: MM_KICKS }, () =>
        scalers.map(async (s) => {
          await jitter(10);
          await s.tick(rules, signal);
        }),
      ).flat(),
    );
    const list = await a.store.list(POOL);
    const errs = sides.flatMap((s) => s.logs.entries.filter((e) => e.level === 'error').map((e) => `${e.event}: ${JSON.stringify(e).slice(0, 200)}`));
    return summarise(provider, list, errs, t0);
  } finally {
    warm.close();
    for (const s of sides) await closeSide(s);
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const t0 = Date.now();
  const machine = { nproc: availableParallelism(), cpu: cpus()[0]?.model ?? '?', node: process.version, load: loadavg().map((l) => l.toFixed(2)).join(' ') };
  say(`machine: nproc=${machine.nproc} node=${machine.node} load=${machine.load}`);
  redis = await startRedisServer();
  const prefix = `scale-${process.pid}`;

  say(`wake phase: ${WARMUP} + ${SAMPLES} samples, boot delay ${BOOT_DELAY_MS} ms, one job per sample, real agent processes`);
  const wake = await wakePhase(redis.url, `${prefix}-wake`);
  const S = wake.samples;
  const W = {
    toWakeLog: stats(S.map((s) => s.toWakeLog)),
    toStartCall: stats(S.map((s) => s.toStartCall)),
    wakeToStarted: stats(S.map((s) => s.wakeToStarted)),
    wakeToBooted: stats(S.map((s) => s.wakeToBooted)),
    bootedToRegistered: stats(S.map((s) => s.bootedToRegistered)),
    registeredToDispatched: stats(S.map((s) => s.registeredToDispatched)),
    dispatchedToStarted: stats(S.map((s) => s.dispatchedToStarted)),
  };
  say(`wake phase: backlog->wake p50 ${W.toWakeLog.p50} ms p99 ${W.toWakeLog.p99} ms; wake->started p50 ${W.wakeToStarted.p50} ms p99 ${W.wakeToStarted.p99} ms`);

  say(`two masters: ${ROUNDS} rounds, ${MM_INSTANCES} suspended instances, backlog ${MM_DEMAND}, ${MM_KICKS} kicks each, start call ${MM_START_DELAY_MS} ms`);
  const rounds: MmRound[] = [];
  for (let i = 0; i < ROUNDS; i++) rounds.push(await mmRound(redis.url, `${prefix}-mm${i}`));
  say(`two masters: max start calls per instance ${Math.max(...rounds.map((r) => r.maxPer))}`);
  say(`two scalers without the pool lock: ${ROUNDS} rounds`);
  const open: MmRound[] = [];
  for (let i = 0; i < ROUNDS; i++) open.push(await mmRoundNoLock(redis.url, `${prefix}-open${i}`));

  await cleanup();

  // ---- report
  console.log('');
  console.log('spillway scale benchmark');
  console.log(`machine: nproc ${machine.nproc} (${machine.cpu}), node ${machine.node}, load average at start ${machine.load}`);
  console.log(
    `wake phase: in-process master, local pool of ${wake.instances} (pre-created, stopped), boot delay ${BOOT_DELAY_MS} ms, agents = real CLI processes, quiet period 0.3 s, suspend=terminate (every sample a cold boot); ${S.length} samples after ${WARMUP} warm-up, worst cycle ${f1(wake.cycleMs / 1000)} s`,
  );
  console.log('');
  console.log(`backlog -> wake -> first job started (${S.length} samples, ms):`);
  const row = (name: string, s: ReturnType<typeof stats>) =>
    console.log(
      `  ${name.padEnd(42)} min ${String(s.min).padStart(4)}  p50 ${String(s.p50).padStart(4)}  p90 ${String(s.p90).padStart(4)}  p99 ${String(s.p99).padStart(4)}  max ${String(s.max).padStart(4)}  mean ${f1(s.mean)}`,
    );
  row('enqueue -> instance.waking logged', W.toWakeLog);
  row('enqueue -> provider.start called', W.toStartCall);
  row('instance.waking -> job started (total)', W.wakeToStarted);
  row('  waking -> agent process spawned', W.wakeToBooted);
  row('  spawned -> agent connected (hello)', W.bootedToRegistered);
  row('  connected -> job dispatched', W.registeredToDispatched);
  row('  dispatched -> job started (agent)', W.dispatchedToStarted);
  const extraWakes = S.filter((s) => s.woken !== 1).length;
  const maxWoken = Math.max(0, ...S.map((s) => s.woken));
  const elsewhere = S.filter((s) => !s.ranOnWoken).length;
  const hist = new Map<number, number>();
  for (const x of S) hist.set(x.woken, (hist.get(x.woken) ?? 0) + 1);
  console.log(
    `  instances started (woken or launched) per one-job backlog: ${[...hist].sort((a, b) => a[0] - b[0]).map(([k, v]) => `${k}: ${v} samples`).join(', ')}; the job ran on the first woken instance in ${S.length - elsewhere}/${S.length}`,
  );
  const n = wake.notes;
  console.log(
    `  builds: ${n.jobs} jobs, ${n.dispatches} dispatches, ${n.retriedBuilds} recorded with attempt > 1 (jobs had attempts: 1), ${n.givenBack} taken and given back unrun (${n.givenBackNoAgent} while no agent was connected); agents that said hello after their instance was suspended: ${n.helloAfterRetire.length}${n.helloAfterRetire.length ? ` (e.g. ${n.helloAfterRetire.slice(0, 3).join(', ')})` : ''}`,
  );
  for (const l of n.lost.slice(0, 3)) console.log(`    ${l}`);
  if (wake.errors.length) {
    console.log('  problems:');
    for (const e of wake.errors.slice(0, 10)) console.log(`    ${e}`);
  }
  console.log('');
  console.log(`two masters (${ROUNDS} rounds; ${MM_INSTANCES} suspended instances, backlog ${MM_DEMAND}, ${MM_KICKS} concurrent kicks per master, provider.start takes ${MM_START_DELAY_MS} ms):`);
  const mmLine = (label: string, rs: MmRound[]) => {
    console.log(`  ${label}`);
    rs.forEach((r, i) =>
      console.log(
        `    round ${i + 1}: start calls ${r.total} for ${r.instancesStarted} instances (max ${r.maxPer} per instance), ${r.booting} booting, ${r.launches} launches, ${r.ms} ms${r.errors.length ? `; errors: ${r.errors.slice(0, 2).join(' | ')}` : ''}`,
      ),
    );
  };
  mmLine('Provisioner x2 (pool lock + claim):', rounds);
  mmLine('PoolScaler x2, pool lock open to all (claim alone):', open);
  console.log('');

  const maxPer = Math.max(...rounds.map((r) => r.maxPer));
  const totals = rounds.map((r) => r.total);
  const wanted = Math.min(MM_DEMAND, MM_INSTANCES);
  const maxPerOpen = Math.max(...open.map((r) => r.maxPer));
  const openTotals = open.map((r) => r.total);
  const haveWake = S.length > 0;
  const rows: Array<[string, string, string, boolean | undefined]> = [
    ['backlog over threshold -> wake call p50', ms(W.toWakeLog.p50), '-', undefined],
    ['backlog over threshold -> wake call p99', ms(W.toWakeLog.p99), `<= ${TARGET.wakeP99Ms} ms`, haveWake ? W.toWakeLog.p99 <= TARGET.wakeP99Ms : false],
    ['backlog -> provider.start called p99', ms(W.toStartCall.p99), '-', undefined],
    [`wake -> first job started p50 (boot delay ${BOOT_DELAY_MS} ms)`, ms(W.wakeToStarted.p50), '-', undefined],
    [`wake -> first job started p99 (boot delay ${BOOT_DELAY_MS} ms)`, ms(W.wakeToStarted.p99), '-', undefined],
    ['  of which agent spawn -> connected p50', ms(W.bootedToRegistered.p50), '-', undefined],
    ['instances started per one-job backlog (max)', `${maxWoken} (${extraWakes}/${S.length} samples > 1)`, '= 1', haveWake ? maxWoken === 1 : false],
    ['wake samples taken / failed', `${S.length} / ${wake.errors.length}`, `${SAMPLES} / 0`, S.length === SAMPLES && wake.errors.length === 0],
    ['2 masters: max start calls per instance', String(maxPer), `= ${TARGET.startsPerInstance}`, maxPer === TARGET.startsPerInstance],
    ['2 masters: start calls per round (instances)', `${Math.min(...totals)}-${Math.max(...totals)} (${wanted})`, `= ${wanted}`, totals.every((t) => t === wanted)],
    ['no pool lock: max start calls per instance', String(maxPerOpen), `= ${TARGET.startsPerInstance}`, maxPerOpen === TARGET.startsPerInstance],
    ['no pool lock: start calls per round', `${Math.min(...openTotals)}-${Math.max(...openTotals)}`, '-', undefined],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  const w2 = Math.max(...rows.map((r) => r[2].length));
  const line = `+-${'-'.repeat(w0)}-+-${'-'.repeat(w1)}-+-${'-'.repeat(w2)}-+------+`;
  console.log(line);
  console.log(`| ${'figure'.padEnd(w0)} | ${'value'.padStart(w1)} | ${'target'.padEnd(w2)} | res  |`);
  console.log(line);
  for (const [x, y, z, ok] of rows) console.log(`| ${x.padEnd(w0)} | ${y.padStart(w1)} | ${z.padEnd(w2)} | ${ok === undefined ? '    ' : ok ? 'PASS' : 'MISS'} |`);
  console.log(line);
  console.log(`nproc ${machine.nproc}, node ${machine.node}; bench took ${f1((Date.now() - t0) / 1000)} s`);
  return wake.errors.length > 0 || !haveWake ? 1 : 0;
}

main().then(
  async (code) => {
    clearTimeout(watchdog);
    await cleanup();
    process.exit(code);
  },
  async (err: unknown) => {
    clearTimeout(watchdog);
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    await cleanup();
    killChildren();
    process.exit(1);
  },
);

