import cron, { type ScheduledTask } from 'node-cron';
import type { PoolConfig } from '../config';

/**
 * A pool's warm minimum and cron warm windows ("keep 2 warm 08:00-18:00 Mon-Fri" is
 * `{ cron: '* 8-17 * * 1-5', count: 2 }`): how many instances should be awake at a moment.
 * The expressions are matched against the injected clock's time, never scheduled, so tests
 * and several masters agree without timers.
 */
export class WarmWindows {
  private readonly windows: Array<{ task: ScheduledTask; count: number }>;

  constructor(private readonly pool: Pick<PoolConfig, 'warmMinimum' | 'warmWindows'>) {
    this.windows = pool.warmWindows.map((w) => ({
      task: cron.createTask(w.cron, () => undefined, w.timezone ? { timezone: w.timezone } : {}),
      count: w.count,
    }));
  }

  /** Instances wanted awake at `now` (ms): the warm minimum or the largest open window. */
  wanted(now: number): number {
    const date = new Date(now);
    let n = this.pool.warmMinimum;
    for (const w of this.windows) if (w.task.match(date)) n = Math.max(n, w.count);
    return n;
  }

  close(): void {
    for (const w of this.windows) void w.task.destroy();
  }
}
