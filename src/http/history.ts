import type { Redis } from 'ioredis';
import type { Clock } from '../lib';
import type { InstanceState } from '../provisioner';

/** Wait (queued -> started) percentiles of the builds that started in one sample interval. */
export interface WaitFigures {
  n: number;
  p50Ms: number;
  p90Ms: number;
}

/** One point of the dashboard's charts. */
export interface HistorySample {
  at: number;
  /** Jobs waiting per job type. */
  backlog: Record<string, number>;
  /** Instances per pool and state. */
  instances: Record<string, Partial<Record<InstanceState, number>>>;
  waits: { onprem: WaitFigures | null; cloud: WaitFigures | null };
}

export interface HistoryOptions {
  redis: Redis;
  keyPrefix: string;
  clock: Pick<Clock, 'now'>;
  sampleMs: number;
  /** Samples kept (older ones are trimmed). */
  keep: number;
  /** Who claims the slots, e.g. the master's id. */
  owner: string;
}

/**
 * The charts' time series, one sample per interval for the whole farm: in Redis, so every
 * master draws the same charts and they survive restarts. Several masters each try to take
 * an interval's slot; one wins and records it, so samples are never doubled.
 */
export class History {
  constructor(private readonly opts: HistoryOptions) {}

  /** True when this caller may record the current interval's sample. */
  async claimSlot(): Promise<boolean> {
    const slot = Math.floor(this.opts.clock.now() / this.opts.sampleMs);
    const ok = await this.opts.redis.set(this.key(`history:slot:${slot}`), this.opts.owner, 'PX', this.opts.sampleMs * 2, 'NX');
    return ok === 'OK';
  }

  async record(sample: HistorySample): Promise<void> {
    await this.opts.redis
      .multi()
      .rpush(this.key('history'), JSON.stringify(sample))
      .ltrim(this.key('history'), -this.opts.keep, -1)
      .exec();
  }

  /** When the newest sample was taken (by any master), or null before the first. */
  async latestAt(): Promise<number | null> {
    const last = await this.opts.redis.lindex(this.key('history'), -1);
    if (!last) return null;
    try {
      const at = (JSON.parse(last) as Partial<HistorySample>).at;
      return typeof at === 'number' ? at : null;
    } catch {
      return null;
    }
  }

  /** Samples taken at or after `since`, oldest first. */
  async since(since: number): Promise<HistorySample[]> {
    const raw = await this.opts.redis.lrange(this.key('history'), 0, -1);
    const out: HistorySample[] = [];
    for (const line of raw) {
      try {
        const s = JSON.parse(line) as HistorySample;
        if (typeof s.at === 'number' && s.at >= since) out.push(s);
      } catch {
        // A sample that does not parse (hand-edited key) is skipped, not fatal to the page.
      }
    }
    return out;
  }

  private key(name: string): string {
    return `${this.opts.keyPrefix}:${name}`;
  }
}

/** p50/p90 of `waits` (ms), nearest-rank; null for none. */
export function waitFigures(waits: readonly number[]): WaitFigures | null {
  if (waits.length === 0) return null;
  const sorted = [...waits].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
  return { n: sorted.length, p50Ms: rank(0.5), p90Ms: rank(0.9) };
}
