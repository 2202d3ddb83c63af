/**
 * The backlog of one job type at one moment: what the provisioner's overflow rules read.
 * Counts come from BullMQ; the oldest wait is measured with the monitor's clock.
 */
export interface BacklogSnapshot {
  /** The job type, which is also the BullMQ queue name. */
  type: string;
  /** Jobs in the wait list, ready to be taken. */
  waiting: number;
  /** Jobs ready to be taken that carry a priority (BullMQ keeps them in a separate set). */
  prioritized: number;
  /** Jobs not yet ready: delayed on purpose or waiting out a retry backoff. */
  delayed: number;
  /** Jobs taken by a master and not yet finished. */
  active: number;
  /**
   * Age of the oldest job waiting to be taken (`at - oldestQueuedAt`, never negative); null
   * when nothing waits.
   *
   * Read from the ends of BullMQ's structures, not by scanning them, so it is exact for a FIFO
   * or an all-LIFO wait list and for the prioritized jobs of the highest priority present. A
   * plain job buried behind newer LIFO jobs, or an older job of a lower priority, is not seen.
   * A job that was delayed counts from when it was added, as BullMQ keeps no ready-at time.
   */
  oldestWaitMs: number | null;
  /** When the oldest waiting job was added (BullMQ's `job.timestamp`, epoch ms); null when nothing waits. */
  oldestQueuedAt: number | null;
  /** When the snapshot was taken (the monitor clock's `now()`, epoch ms). */
  at: number;
}

/** The counts a snapshot is built from, as BullMQ's `getJobCounts` returns them. */
export type BacklogCounts = Partial<Record<'waiting' | 'prioritized' | 'delayed' | 'active', number>>;

/**
 * Builds a snapshot from counts and the added-at timestamps of the candidates for "oldest
 * waiting job". Pure, so the arithmetic is tested without Redis.
 */
export function toSnapshot(type: string, counts: BacklogCounts, queuedAt: readonly number[], at: number): BacklogSnapshot {
  const waiting = counts.waiting ?? 0;
  const prioritized = counts.prioritized ?? 0;
  // Counts and heads are read in separate round trips; when the counts say nothing waits, a
  // head seen a moment earlier is already gone and must not report a wait.
  const stamps = waiting + prioritized > 0 ? queuedAt.filter((t) => Number.isFinite(t)) : [];
  const oldestQueuedAt = stamps.length ? Math.min(...stamps) : null;
  return {
    type,
    waiting,
    prioritized,
    delayed: counts.delayed ?? 0,
    active: counts.active ?? 0,
    oldestWaitMs: oldestQueuedAt === null ? null : Math.max(0, at - oldestQueuedAt),
    oldestQueuedAt,
    at,
  };
}
