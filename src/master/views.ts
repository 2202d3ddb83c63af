import { freeExecutors, type AgentRegistry } from './agent-registry';
import type { Dispatcher } from './dispatcher';
import { placedOf } from './held-job';
import type { JobTypeQueue } from './job-type-queue';

/** A row of `GET /api/queues`. */
export interface QueueView {
  type: string;
  waiting: number;
  prioritized: number;
  delayed: number;
  active: number;
  /** Taken by this master, waiting for an executor that meets their requirements. */
  assigning: number;
  completed: number;
  failed: number;
  /** Age of the oldest job still waiting to be taken; null when none waits. */
  oldestWaitMs: number | null;
  runningOnprem: number;
  runningCloud: number;
  executors: { total: number; busy: number; free: number };
  agents: number;
  /** Jobs put aside because no agent connected here can run them, and why (the latest). */
  unrunnable: { count: number; reason: string | null };
}

export async function queuesView(
  queues: ReadonlyMap<string, JobTypeQueue>,
  registry: AgentRegistry,
  dispatcher: Dispatcher,
  now: number,
): Promise<QueueView[]> {
  const held = dispatcher.heldJobs();
  return Promise.all(
    [...queues.values()].map(async (q) => {
      const c = await q.queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed');
      const [oldestWaiting] = await q.queue.getJobs(['waiting'], 0, 0, true);
      const [oldestPrioritized] = await q.queue.getJobs(['prioritized'], 0, 0, true);
      const stamps = [oldestWaiting?.timestamp, oldestPrioritized?.timestamp].filter((t): t is number => typeof t === 'number');
      const agents = registry.list().filter((a) => a.jobTypes.has(q.type));
      const total = agents.reduce((n, a) => n + a.executors, 0);
      const free = agents.reduce((n, a) => n + freeExecutors(a), 0);
      const running = held.filter((h) => h.queue === q.type && placedOf(h.state));
      const cloud = running.filter((h) => placedOf(h.state)?.build.location === 'cloud').length;
      return {
        type: q.type,
        waiting: c.waiting ?? 0,
        prioritized: c.prioritized ?? 0,
        delayed: c.delayed ?? 0,
        active: c.active ?? 0,
        assigning: dispatcher.pendingCount(q.type),
        completed: c.completed ?? 0,
        failed: c.failed ?? 0,
        oldestWaitMs: stamps.length ? Math.max(0, now - Math.min(...stamps)) : null,
        runningOnprem: running.length - cloud,
        runningCloud: cloud,
        executors: { total, busy: total - free, free },
        agents: agents.length,
        unrunnable: dispatcher.unrunnableOf(q.type),
      };
    }),
  );
}

/** A row of `GET /api/agents`. */
export function agentsView(registry: AgentRegistry) {
  return registry.list().map((a) => ({
    name: a.name,
    location: a.location,
    pool: a.pool ?? null,
    instanceId: a.instanceId ?? null,
    address: a.address,
    jobTypes: [...a.jobTypes],
    unknownJobTypes: [...a.unknownJobTypes],
    executors: a.executors,
    busy: a.running.size,
    draining: a.draining,
    os: a.os,
    arch: a.arch,
    cpus: a.cpus,
    memoryMb: a.memoryMb,
    labels: [...a.labels],
    version: a.version,
    connectedAt: a.connectedAt,
    lastSeen: a.lastSeen,
    running: [...a.running].map((k) => {
      const i = k.indexOf('/');
      return { type: k.slice(0, i), id: k.slice(i + 1) };
    }),
  }));
}
