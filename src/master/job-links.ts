import type { Redis } from 'ioredis';

/** How a job and its retries point at each other. */
export interface JobLinks {
  /** The job this one was submitted again from (`POST /api/jobs/:id/retry`). */
  retryOf: string | null;
  /** The job submitted again from this one. */
  retriedAs: string | null;
}

/** As long as client-chosen ids and cancel requests: beyond a job's life in its queue. */
const KEEP_SEC = 30 * 24 * 3600;

/**
 * The links between a job and its retry, in Redis (`<keyPrefix>:job-links:<type>:<id>`), beside
 * BullMQ's job: its data is the build's payload, which an action's digest covers and which any
 * producer may write, so nothing of ours goes into it. A job is retried at most once; its retry
 * may be retried in turn, so the attempts of one build form a chain.
 */
export class JobLinkStore {
  constructor(private readonly d: { redis: Pick<Redis, 'hgetall' | 'hsetnx' | 'hget' | 'multi'>; keyPrefix: string }) {}

  async get(type: string, id: string): Promise<JobLinks> {
    const h = await this.d.redis.hgetall(this.key(type, id));
    return { retryOf: h.retryOf || null, retriedAs: h.retriedAs || null };
  }

  /**
   * Claims `id`'s retry for `newId` and links `newId` back to it. Of concurrent retries of one
   * job exactly one claims it; the others get the id it claimed (`claimed: false`).
   */
  async claimRetry(type: string, id: string, newId: string): Promise<{ claimed: boolean; retriedAs: string }> {
    if ((await this.d.redis.hsetnx(this.key(type, id), 'retriedAs', newId)) === 0) {
      return { claimed: false, retriedAs: (await this.d.redis.hget(this.key(type, id), 'retriedAs')) ?? newId };
    }
    await this.d.redis
      .multi()
      .expire(this.key(type, id), KEEP_SEC)
      .hset(this.key(type, newId), 'retryOf', id)
      .expire(this.key(type, newId), KEEP_SEC)
      .exec();
    return { claimed: true, retriedAs: newId };
  }

  /** Undoes a claim whose job could not be added, so the job can be retried again. */
  async releaseRetry(type: string, id: string, newId: string): Promise<void> {
    await this.d.redis.multi().hdel(this.key(type, id), 'retriedAs').del(this.key(type, newId)).exec();
  }

  private key(type: string, id: string): string {
    return `${this.d.keyPrefix}:job-links:${type}:${id}`;
  }
}
