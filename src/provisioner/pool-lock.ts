import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { PoolLock } from './pool-scaler';

/** Releases the lock only if we still own it (it may have expired and been taken). */
const RELEASE = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`;

/**
 * A short Redis lease per pool (SET NX PX): two masters never decide the same pool's scale-up
 * from the same picture of it, which would wake or launch twice for one backlog.
 */
export class RedisPoolLock implements PoolLock {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    /** Longer than a scale-up step takes; a crashed holder's lease simply expires. */
    private readonly ttlMs = 30_000,
  ) {}

  async run(pool: string, fn: () => Promise<void>): Promise<boolean> {
    const key = `${this.keyPrefix}:pool:${pool}:scale-lock`;
    const owner = randomUUID();
    if ((await this.redis.set(key, owner, 'PX', this.ttlMs, 'NX')) !== 'OK') return false;
    try {
      await fn();
    } finally {
      await this.redis.eval(RELEASE, 1, key, owner);
    }
    return true;
  }
}
