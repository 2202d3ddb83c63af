import type { Clock } from './clock';

export interface RateLimit {
  /** Attempts allowed at once. */
  burst: number;
  /** Attempts earned back per minute. */
  perMinute: number;
}

export type RateVerdict = { ok: true } | { ok: false; retryInMs: number };

interface Bucket {
  tokens: number;
  at: number;
}

/** Above this many tracked keys, buckets that have refilled are dropped (they equal no bucket). */
const PRUNE_ABOVE = 10_000;

/** A token bucket per key (a remote address): `burst` attempts at once, refilled at `perMinute`. */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly limit: RateLimit,
    private readonly clock: Clock,
  ) {}

  take(key: string): RateVerdict {
    const now = this.clock.now();
    if (this.buckets.size > PRUNE_ABOVE) this.prune(now);
    const b = this.refilled(this.buckets.get(key), now);
    if (b.tokens >= 1) {
      this.buckets.set(key, { tokens: b.tokens - 1, at: now });
      return { ok: true };
    }
    this.buckets.set(key, b);
    return { ok: false, retryInMs: Math.ceil(((1 - b.tokens) * 60_000) / this.limit.perMinute) };
  }

  private refilled(b: Bucket | undefined, now: number): Bucket {
    if (!b) return { tokens: this.limit.burst, at: now };
    const earned = ((now - b.at) * this.limit.perMinute) / 60_000;
    return { tokens: Math.min(this.limit.burst, b.tokens + earned), at: now };
  }

  private prune(now: number): void {
    for (const [key, b] of this.buckets) if (this.refilled(b, now).tokens >= this.limit.burst) this.buckets.delete(key);
  }
}
