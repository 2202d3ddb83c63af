/**
 * Scale benchmark, phase 1+2: backlog -> wake -> first job started.
 *
 * An in-process `Master` (src/master) with a `local` pool of pre-created, stopped instances
 * whose agents are real `spillway agent` processes (started by the LocalProvider after its
 * simulated boot delay), no on-prem agents, and one job type that overflows into the pool at a
 * backlog of 1. One job at a time is enqueued with a plain BullMQ Queue; each sample wakes a
 * fresh, never-booted instance (suspend mode `terminate` retires it after the quiet period, so
 * the next backlog cannot be absorbed by it and every sample is a cold boot), and the next
 * sample starts only once that instance is suspended and its agent gone. Timestamps:
 * job.timestamp (enqueue, this process's clock) -> the `instance.waking` log entry (logged
 * right before provider.start; seen through the logger's sink) and the LocalProvider.start call
 * itself (wrapped here on the prototype, src untouched) -> the build record's startedAt (the
 * agent's clock, same machine).
 *
 * The quiet period as served: from the build record's finishedAt (the sample's only, hence
 * last, build; it was dispatched the moment the woken agent registered) to the
 * `instance.draining` entry of its instance. It should be the pool's quiet period, plus at most
 * one reap interval (the provisioner's tick).
 *
 * Also counted, because they decide what a wake costs: how many instances one single-job
 * backlog starts (each sample should start exactly one), and how many jobs the master took and
 * gave back unrun (JobTypeQueue.giveBack, counted through a prototype wrapper).
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { parseConfig } from '../src/config';
import { systemClock } from '../src/lib';
import { Daemon } from '../src/cli/daemon';
import type { BuildRecord } from '../src/master';
import { JobTypeQueue } from '../src/master/job-type-queue';
import { InstanceStore, LocalProvider } from '../src/provisioner';
import { intEnv, say } from './harness';
import { poll } from './procs';
import { BOOT_DELAY_MS, CLI, POOL, QUIET_PERIOD_MS, SAMPLES, TOKEN, TYPE, WAKE_PHASE_BUDGET_MS, WARMUP } from './scale-knobs';
import { captureLogs } from './scale-logs';

export interface WakeSample {
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
  /** The build's finishedAt -> its instance's `instance.draining` entry. */
  lastBuildEndToDrain: number;
  /** Instances woken for this one-job backlog. */
  woken: number;
  ranOnWoken: boolean;
}

/**
 * Runs the phase against the redis-server at `redisUrl`, under its own key prefixes. What it
 * starts is also registered in `closers`, so a run cut short still stops it.
 */
export async function wakePhase(redisUrl: string, prefix: string, closers: Array<() => Promise<unknown>>) {
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
        quietPeriodMin: QUIET_PERIOD_MS / 60_000,
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

  const daemon = new Daemon({ config, log: logs.log, agentCommand: [process.execPath, CLI] });
  let stopped = false;
  closers.push(async () => {
    if (!stopped) await daemon.stop();
  });
  await daemon.start();
  const master = daemon.master;
  registrySize = () => master.registry.list().length;
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
      const drained = logs.find(mark, (e) => e.event === 'instance.draining' && e.instanceId === rec.instanceId);
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
        lastBuildEndToDrain: (drained?.at ?? NaN) - (rec.finishedAt ?? NaN),
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
  await daemon.stop();
  await queue.close();
  LocalProvider.prototype.start = origStart;
  JobTypeQueue.prototype.giveBack = origGiveBack;
  return { samples, errors, cycleMs, instances, notes };
}
