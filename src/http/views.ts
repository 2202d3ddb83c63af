import type { MasterView } from '../master';

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

export async function queuesView(master: MasterView, now: number): Promise<QueueView[]> {
  const held = master.running();
  const all = master.agents();
  const byId = new Map(all.map((a) => [a.id, a]));
  return Promise.all(
    master.jobTypes.map(async (type) => {
      const c = await master.queueCounts(type);
      const agents = all.filter((a) => a.jobTypes.has(type));
      const total = agents.reduce((n, a) => n + a.executors, 0);
      const free = agents.reduce((n, a) => n + a.freeExecutors, 0);
      const running = held.filter((h) => h.queue === type);
      const cloud = running.filter((h) => byId.get(h.agentId)?.location === 'cloud').length;
      return {
        type,
        waiting: c.waiting,
        prioritized: c.prioritized,
        delayed: c.delayed,
        active: c.active,
        assigning: master.pendingCount(type),
        completed: c.completed,
        failed: c.failed,
        oldestWaitMs: c.oldestQueuedAt === null ? null : Math.max(0, now - c.oldestQueuedAt),
        runningOnprem: running.length - cloud,
        runningCloud: cloud,
        executors: { total, busy: total - free, free },
        agents: agents.length,
        unrunnable: master.unrunnableOf(type),
      };
    }),
  );
}

/** A row of `GET /api/agents`. */
export function agentsView(master: Pick<MasterView, 'agents'>) {
  return master.agents().map((a) => ({
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
    /** Too little free disk to take builds: which filesystem, how much is free of the minimum. */
    diskFull: a.diskFull ?? null,
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
