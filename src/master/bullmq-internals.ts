import { Worker, type Job, type JobJson } from 'bullmq';

/**
 * The BullMQ version whose internals this file relies on, checked by
 * test/master/bullmq-internals.redis.test.ts against the installed one: a new version must be
 * read again (its Worker and its moveToFinished script) before the number here is raised.
 */
export const BULLMQ_CHECKED_VERSION = '6.7.0';

/**
 * What `Job.moveToCompleted(value, token, true)` answers when its script also took the next
 * job (BullMQ's `fetchNext`): `[jobData, jobId, rateLimitDelay, delayUntil]`, `[]` or
 * `[null, ...]` when none came. BullMQ's own Worker turns it into a Job with the protected
 * `nextJobFromJobData` (which also schedules a repeatable job's next run), so a subclass is
 * the one way to do the same without copying it.
 *
 * The next job is locked with the token that settled the last one: moveToFinished has one
 * token for both. So whoever knew that token (the agent that ran the last job) knows the new
 * job's lock, and the job may be given to that agent only.
 */
export class TakingWorker extends Worker {
  /** The job a settle with fetchNext took, as BullMQ's Worker makes it; undefined if none came. */
  async fetched(answer: unknown, token: string): Promise<Job | undefined> {
    if (!Array.isArray(answer) || answer[0] === null || typeof answer[0] !== 'object' || typeof answer[1] !== 'string') return undefined;
    return (await this.nextJobFromJobData(answer[0] as JobJson, answer[1], token)) ?? undefined;
  }
}
