import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * Preempted builds per pool and job type over a sliding window, in Redis so every master counts
 * the same ones. Key: `<prefix>:pool:<pool>:preemptions:<type>`, a sorted set of one member per
 * preemption scored by its time; members older than the window are trimmed as new ones arrive.
 */
export class PreemptionWindow {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  /** Records one preemption at `at`; returns how many the window now holds. */
  async add(pool: string, type: string, at: number, windowMs: number): Promise<number> {
    const key = this.key(pool, type);
    const res = await this.redis
      .multi()
      .zadd(key, at, `${at}:${randomBytes(4).toString('hex')}`)
      .zremrangebyscore(key, '-inf', `(${at - windowMs}`)
      .pexpire(key, Math.ceil(windowMs))
      .zcard(key)
      .exec();
    return Number(res?.[3]?.[1] ?? 0);
  }

  /** Preemptions per type within the window ending `now`. */
  async counts(pool: string, types: readonly string[], now: number, windowMs: number): Promise<Map<string, number>> {
    if (types.length === 0) return new Map();
    const pipe = this.redis.pipeline();
    for (const t of types) pipe.zcount(this.key(pool, t), now - windowMs, '+inf');
    const replies = (await pipe.exec()) ?? [];
    return new Map(types.map((t, i) => [t, Number(replies[i]?.[1] ?? 0)]));
  }

  private key(pool: string, type: string): string {
    return `${this.prefix}:pool:${pool}:preemptions:${type}`;
  }
}
