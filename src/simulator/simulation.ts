import type { Config } from '../config';
import type { Logger } from '../lib';
import { chooseAgent } from '../master';
import { InstanceActivity, PoolScaler, RuleBook, poolJobTypes, reconcilePool, STARTING_STATES, type Backlog, type Rules } from '../provisioner';
import { bootTimes, preCreated } from './boot-times';
import { CachedWarmWindows } from './cached-warm-windows';
import { EventQueue } from './event-queue';
import { SimFleet, type SimAgent } from './sim-fleet';
import { SimInstances } from './sim-instances';
import { SimProvider } from './sim-provider';
import { waitStats, type PoolResult, type Sample, type SimulationResult, type TypeResult } from './stats';
import type { TraceJob } from './trace';

export interface SimulationOptions {
  policy?: { name: string; spec: string };
  /** Points on the chart's time axis. @defaultValue 600 */
  samples?: number;
}

interface Queued {
  job: TraceJob;
  /** Requirements as a key: jobs with the same one are placeable on the same agents. */
  req: string;
  taken: boolean;
}

interface TypeQueue {
  jobs: Queued[];
  head: number;
  waiting: number;
  waits: { onprem: number[]; cloud: number[] };
}

const silent: Logger = { error() {}, warn() {}, info() {}, debug() {}, child: () => silent };

interface Pool {
  name: string;
  scaler: PoolScaler;
  warm: CachedWarmWindows;
  types: string[];
}

/**
 * Replays a trace of job arrivals against one config on simulated time. The decisions are the
 * daemon's own code: each pool's PoolScaler (decideCapacity, idleVerdict, warm windows, the
 * instance transition table) and InstanceActivity, the master's chooseAgent for placing jobs,
 * driven through an injected clock, an in-memory instance store and a simulated provider.
 * Between events nothing changes, so the scalers run when something happened and at the next
 * moment a time threshold (oldest wait, quiet period, boot timeout, warm window) can flip.
 */
export async function simulate(config: Config, trace: readonly TraceJob[], opts: SimulationOptions = {}): Promise<SimulationResult> {
  const start = trace[0]?.at ?? 0;
  const events = new EventQueue(start);
  const now = () => events.now;
  const clock = {
    now,
    sleep: (ms: number) => new Promise<void>((resolve) => events.at(events.now + ms, resolve)),
  };
  let placementChanged = true;
  const fleet = new SimFleet(now, () => (placementChanged = true));
  const instances = new SimInstances(now);
  const activity = new InstanceActivity({ instances, fleet, now, log: silent });
  const pending: Array<Promise<unknown>> = [];
  const poolOf = new Map<string, string>();
  const queues = new Map<string, TypeQueue>();
  for (const t of Object.keys(config.jobTypes)) queues.set(t, { jobs: [], head: 0, waiting: 0, waits: { onprem: [], cloud: [] } });
  const rules: Rules = RuleBook.fromConfig(config);

  const backlog: Backlog = {
    current(type) {
      const q = queues.get(type);
      if (!q) return undefined;
      skipTaken(q);
      const oldest = q.jobs[q.head];
      return { waiting: q.waiting, prioritized: 0, oldestWaitMs: oldest ? now() - oldest.job.at : null };
    },
  };

  for (const group of config.simulation.onprem) {
    for (let i = 1; i <= group.count; i++) {
      fleet.connect({ ...group, name: `${group.name}-${i}`, location: 'onprem', ...(group.cpus !== undefined && { cpus: group.cpus }), ...(group.memoryMb !== undefined && { memoryMb: group.memoryMb }) });
    }
  }

  const pools: Pool[] = [];
  const signal = new AbortController().signal;
  for (const [name, pc] of Object.entries(config.pools)) {
    const types = poolJobTypes(config, name);
    const onUp = (id: string) => {
      poolOf.set(id, name);
      fleet.connect({ name: id, location: 'cloud', instanceId: id, jobTypes: types, executors: pc.executorsPerInstance, ...(pc.agentTokens.length > 0 && { pool: name }) });
      placementChanged = true;
      // What the provisioner does when an instance's agent says hello (Provisioner.onRegistered).
      activity.agentArrived(id);
      pending.push(
        activity.serial(id, async () => {
          await instances.apply(name, id, { type: 'registered', agent: id }, { agent: id });
          await activity.update(name, id);
        }),
      );
    };
    const provider = new SimProvider(name, bootTimes(config, name), events, pc.ec2?.spot ?? false, onUp, preCreated(config, name));
    const warm = new CachedWarmWindows(pc);
    const scaler = new PoolScaler({
      name,
      config: pc,
      jobTypes: types,
      provider,
      instances,
      activity,
      lock: { run: async (_pool, fn) => (await fn(), true) },
      fleet,
      preemptions: { counts: async () => new Map() },
      backlog,
      warm,
      clock,
      log: silent,
    });
    await reconcilePool(name, provider, instances, now(), signal, silent);
    pools.push({ name, scaler, warm, types });
  }

  let done = 0;
  let builds = 0;
  const total = trace.length;
  for (const job of trace) {
    events.at(job.at, () => {
      const q = queues.get(job.type)!;
      q.jobs.push({ job, req: job.requirements ? JSON.stringify(job.requirements) : '', taken: false });
      q.waiting++;
      placementChanged = true;
    });
  }

  const take = (q: TypeQueue, item: Queued, agent: SimAgent) => {
    item.taken = true;
    q.waiting--;
    // The master's build key (`queue/jobId`): the fleet counts a type's builds by it.
    const key = `${item.job.type}/build-${++builds}`;
    const firstBuild = agent.running.size === 0;
    fleet.startBuild(agent, key);
    q.waits[agent.location].push(events.now - item.job.at);
    const instanceId = agent.instanceId;
    if (instanceId && firstBuild) pending.push(activity.sync(poolOf.get(instanceId)!, instanceId));
    events.at(events.now + item.job.durationMs, () => {
      fleet.endBuild(agent, key);
      done++;
      placementChanged = true;
      if (instanceId && agent.running.size === 0) {
        // Provisioner.onIdle: the quiet period counts from this build's end.
        activity.buildsEnded(instanceId, events.now);
        pending.push(activity.sync(poolOf.get(instanceId)!, instanceId));
      }
    });
  };

  /** Oldest job first across types, each to chooseAgent's pick among agents with a free executor. */
  const dispatch = () => {
    if (!placementChanged) return;
    placementChanged = false;
    const cursor = new Map<TypeQueue, number>();
    const blocked = new Map<TypeQueue, Set<string>>();
    for (const q of queues.values()) {
      skipTaken(q);
      if (q.waiting > 0) (cursor.set(q, q.head), blocked.set(q, new Set()));
    }
    const typeOf = new Map([...queues].map(([t, q]) => [q, t]));
    while (fleet.free.size > 0 && cursor.size > 0) {
      let best: TypeQueue | undefined;
      for (const [q, c] of cursor) if (!best || q.jobs[c]!.job.at < best.jobs[cursor.get(best)!]!.job.at) best = q;
      const q = best!;
      const c = cursor.get(q)!;
      const item = q.jobs[c]!;
      if (!blocked.get(q)!.has(item.req)) {
        const choice = chooseAgent(typeOf.get(q)!, item.job.requirements, fleet.free, config.agents.placement);
        if (choice.agent) take(q, item, choice.agent as SimAgent);
        else if (item.req === '') {
          // No free agent serves the type at all: nothing more of it can be placed now.
          cursor.delete(q);
          continue;
        } else blocked.get(q)!.add(item.req);
      }
      let n = c + 1;
      while (n < q.jobs.length && q.jobs[n]!.taken) n++;
      if (n < q.jobs.length) cursor.set(q, n);
      else cursor.delete(q);
    }
  };

  const span = Math.max(1, (trace[trace.length - 1]?.at ?? start) - start);
  const sampleEvery = Math.max(1000, Math.ceil(span / (opts.samples ?? 600)));
  const samples: Sample[] = [];
  let nextSample = start;
  const sample = (until: number) => {
    if (nextSample > until) return;
    let waiting = 0;
    for (const q of queues.values()) waiting += q.waiting;
    const awake: Record<string, number> = {};
    for (const p of pools) awake[p.name] = instances.snapshot(p.name).filter((r) => r.state !== 'suspended' && r.state !== 'terminated').length;
    for (; nextSample <= until; nextSample += sampleEvery) samples.push({ at: nextSample, backlog: waiting, awake });
  };

  let tickAt = Infinity;
  const settled = (p: Pool) => {
    const rs = instances.snapshot(p.name);
    const awake = rs.filter((r) => r.state !== 'suspended' && r.state !== 'terminated').length;
    return awake === 0 || (awake <= p.warm.wanted(now()) && !rs.some((r) => STARTING_STATES.has(r.state) || r.state === 'busy'));
  };
  const scheduleDeadline = () => {
    const t = now();
    let next = Infinity;
    const finished = done === total;
    for (const p of pools) {
      const pc = config.pools[p.name]!;
      for (const type of Object.keys(rules)) {
        const rule = rules[type];
        if (!rule || rule.pool !== p.name || !rule.enabled) continue;
        const oldest = backlog.current(type)?.oldestWaitMs;
        if (oldest !== null && oldest !== undefined) next = Math.min(next, t - oldest + rule.minOldestWaitSec * 1000);
      }
      for (const r of instances.snapshot(p.name)) {
        if (r.state === 'idle') next = Math.min(next, Math.max(r.lastJobEndedAt ?? 0, r.since) + pc.quietPeriodMin * 60_000);
        if (STARTING_STATES.has(r.state)) next = Math.min(next, r.since + pc.bootTimeoutSec * 1000 + 1);
      }
      if (pc.warmWindows.length > 0 && !(finished && settled(p))) next = Math.min(next, (Math.floor(t / 60_000) + 1) * 60_000);
    }
    if (finished && pools.every(settled)) return;
    if (next <= t || next === Infinity || next >= tickAt) return;
    tickAt = next;
    events.at(next, () => (tickAt = Infinity));
  };

  let steps = 0;
  while (events.size > 0) {
    sample(events.nextAt()! - 1);
    events.runNext();
    await drain(pending);
    steps++;
    dispatch();
    for (const p of pools) await p.scaler.tick(rules, signal);
    await activity.flush();
    await drain(pending);
    dispatch();
    scheduleDeadline();
  }
  sample(now());
  instances.settle();
  for (const p of pools) p.warm.close();

  const types: TypeResult[] = [...queues].map(([type, q]) => ({
    type,
    jobs: q.jobs.length,
    onprem: waitStats(q.waits.onprem),
    cloud: waitStats(q.waits.cloud),
    overflowed: q.waits.cloud.length,
    neverRan: q.waiting,
  }));
  const poolResults: PoolResult[] = pools.map((p) => {
    const u = instances.usage.get(p.name) ?? { runningMs: 0, suspendedMs: 0, wakes: 0, launches: 0 };
    const pc = config.pools[p.name]!;
    const price = pc.price ? (pc.ec2?.spot ? (pc.price.spotPerHour ?? pc.price.onDemandPerHour) : pc.price.onDemandPerHour) : undefined;
    const runningHours = u.runningMs / 3_600_000;
    return { pool: p.name, runningHours, suspendedHours: u.suspendedMs / 3_600_000, wakes: u.wakes, launches: u.launches, cost: price === undefined ? null : runningHours * price };
  });
  const costs = poolResults.map((p) => p.cost).filter((c): c is number => c !== null);
  return {
    policy: opts.policy?.name ?? 'config',
    spec: opts.policy?.spec ?? '',
    startedAt: start,
    endedAt: now(),
    types: types.filter((t) => t.jobs > 0),
    pools: poolResults,
    all: waitStats([...queues.values()].flatMap((q) => [...q.waits.onprem, ...q.waits.cloud])),
    cost: costs.length ? costs.reduce((a, b) => a + b, 0) : null,
    samples,
    steps,
  };
}

function skipTaken(q: TypeQueue): void {
  while (q.head < q.jobs.length && q.jobs[q.head]!.taken) q.head++;
  // Drop the taken prefix now and then, so a week's queue does not keep every job it ever held.
  if (q.head > 4096 && q.head * 2 > q.jobs.length) {
    q.jobs = q.jobs.slice(q.head);
    q.head = 0;
  }
}

async function drain(pending: Array<Promise<unknown>>): Promise<void> {
  while (pending.length) await Promise.all(pending.splice(0));
}
