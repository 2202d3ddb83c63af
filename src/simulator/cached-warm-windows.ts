import type { PoolConfig } from '../config';
import { WarmWindows } from '../provisioner';

/**
 * The pool's own WarmWindows, asked once per minute of simulated time (once per second when an
 * expression has a seconds field): matching cron expressions is the costliest thing a scaler
 * does, and a week of steps would ask millions of times for the same few thousand answers.
 */
export class CachedWarmWindows extends WarmWindows {
  private readonly granularityMs: number;
  private slot = NaN;
  private answer = 0;

  constructor(pool: Pick<PoolConfig, 'warmMinimum' | 'warmWindows'>) {
    super(pool);
    this.granularityMs = pool.warmWindows.some((w) => w.cron.trim().split(/\s+/).length > 5) ? 1000 : 60_000;
  }

  override wanted(now: number): number {
    const slot = Math.floor(now / this.granularityMs);
    if (slot !== this.slot) {
      this.slot = slot;
      this.answer = super.wanted(now);
    }
    return this.answer;
  }
}
