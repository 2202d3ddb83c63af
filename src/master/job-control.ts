import { randomUUID } from 'node:crypto';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config';
import { BadRequestError, JobFinishedError, JobNotFinishedError, NotFoundError, type Clock, type Logger } from '../lib';
import { checkJobPayload } from '../protocol';
import type { BuildStore } from './build-store';
import { cancelReasonText, CancelStore, isCancelReason } from './cancel-store';
import type { Dispatcher } from './dispatcher';
import { JobLinkStore } from './job-links';
import type { JobService } from './job-service';
import type { CancelWaitingOutcome } from './job-type-queue';

/** What `POST /api/jobs/:id/cancel` did. `cancelling`: the master holding it has not confirmed yet (it may be down); it will not run again. */
export interface Cancelled {
  id: string;
  type: string;
  state: 'cancelled' | 'cancelling';
  /** What the job was doing: waiting (for an agent or an executor), delayed, running, or active (held by a master that did not say). */
  was: string;
  /** Who cancelled it: the first cancel of a job is the one that counts. */
  by: string;
  reason: string | null;
}

/** What `POST /api/jobs/:id/retry` did: `created` false when the job was retried before (the id is that retry's). */
export interface Retried {
  id: string;
  type: string;
  retryOf: string;
  created: boolean;
  url: string;
}

/** How long a cancel waits for the master holding the job to fail it; the route's deadline adds this. */
export const CANCEL_WAIT_MS = 5000;
/** How often the queue is looked at meanwhile: another master's cancel announces no event here. */
const CANCEL_POLL_MS = 100;
const DONE: ReadonlySet<string> = new Set(['completed', 'failed']);

export interface JobControlDeps {
  config: Config;
  jobs: Pick<JobService, 'find'>;
  builds: Pick<BuildStore, 'attempts'>;
  dispatcher: Dispatcher;
  /** The API's connection. */
  redis: Redis;
  clock: Clock;
  log: Logger;
}

/** Cancelling and retrying jobs, behind the HTTP API (submit or admin token) and the CLI. */
export class JobControl {
  private readonly cancels: CancelStore;
  private readonly links: JobLinkStore;

  constructor(private readonly d: JobControlDeps) {
    const stores = { redis: d.redis, keyPrefix: d.config.redis.keyPrefix };
    this.cancels = new CancelStore(stores);
    this.links = new JobLinkStore(stores);
  }

  /**
   * Cancels a job that has not finished. Waiting or delayed, it fails in its queue at once
   * and never runs; held by a master, that master fails it and has its agent kill the build.
   * Answers once the job has failed as cancelled, or after {@link CANCEL_WAIT_MS} with
   * `cancelling` if its master has not confirmed (the request stands: whichever master takes
   * the job next cancels it). A job that finished first is a {@link JobFinishedError}.
   */
  async cancel(id: string, type: string | undefined, by: string, reason: string | null): Promise<Cancelled> {
    const { job, q } = await this.d.jobs.find(id, type);
    const state = await job.getState();
    if (DONE.has(state)) throw finishedError(id, state, job);
    const request = await this.cancels.request(q.type, id, { by, reason, at: this.d.clock.now() });
    const failedReason = cancelReasonText(request);
    const answer = (s: Cancelled['state'], was: string): Cancelled => ({ id, type: q.type, state: s, was, by: request.by, reason: request.reason });
    const deadline = this.d.clock.now() + CANCEL_WAIT_MS;
    let was: string | undefined;
    for (;;) {
      const out = await q.cancelWaiting(id, failedReason, this.d.clock.now());
      if (out === 'waiting' || out === 'prioritized' || out === 'delayed') {
        this.d.log.info('job.cancelled', { queue: q.type, jobId: id, was: out, by: request.by, reason: request.reason });
        this.d.dispatcher.emit('job-settled', q.type, id);
        return answer('cancelled', was ?? wasOf(out));
      }
      if (out === 'missing') throw new NotFoundError(`no job ${id} of type ${q.type}: it was removed from its queue`);
      if (out === 'completed' || out === 'failed') {
        const ended = await q.getJob(id);
        if (out === 'failed' && ended?.failedReason === failedReason) return answer('cancelled', was ?? 'running');
        throw finishedError(id, out, ended);
      }
      if (was === undefined) {
        // Held by a master (maybe this one): it fails the job, and its agent kills the build.
        was = this.d.dispatcher.heldState(q.type, id) ?? (await this.runningOnRecord(q.type, id));
        if (!this.d.dispatcher.cancel(q.type, id, request)) await this.cancels.announce({ type: q.type, id, request });
      }
      const left = deadline - this.d.clock.now();
      if (left <= 0) return answer('cancelling', was);
      await this.settledOrTick(q.type, id, Math.min(left, CANCEL_POLL_MS));
    }
  }

  /**
   * Submits a finished job again: same type, payload, attempts and priority, a new id, and
   * links both ways (`retryOf`, `retriedAs`). A job is retried once: retrying it again answers
   * that retry (`created: false`); retry the retry for another run.
   */
  async retry(id: string, type: string | undefined): Promise<Retried> {
    const { job, q } = await this.d.jobs.find(id, type);
    const state = await job.getState();
    if (!DONE.has(state)) throw new JobNotFinishedError(`job ${id} is ${state}: only a finished job can be retried (cancel it first)`);
    const check = checkJobPayload(job.data, q.type);
    if (!check.ok) throw new BadRequestError(`job ${id} cannot be retried: ${check.reason}`);
    const answer = (newId: string, created: boolean): Retried => ({ id: newId, type: q.type, retryOf: id, created, url: `/api/jobs/${newId}` });
    const claim = await this.links.claimRetry(q.type, id, randomUUID());
    if (!claim.claimed) return answer(claim.retriedAs, false);
    try {
      // The stored data as it is, not as validated: an action's digest covers it byte for byte.
      await q.apiQueue.add('build', job.data, {
        jobId: claim.retriedAs,
        attempts: job.opts.attempts ?? this.d.config.jobTypes[q.type]!.attempts,
        priority: job.opts.priority || undefined,
        removeOnComplete: { count: this.d.config.builds.keep },
        removeOnFail: { count: this.d.config.builds.keep },
      });
    } catch (err) {
      await this.links.releaseRetry(q.type, id, claim.retriedAs).catch(() => undefined);
      throw err;
    }
    this.d.log.info('job.resubmitted', { queue: q.type, jobId: claim.retriedAs, retryOf: id });
    return answer(claim.retriedAs, true);
  }

  /** A job some other master holds: running if its current build has a running record. */
  private async runningOnRecord(type: string, id: string): Promise<string> {
    const builds = await this.d.builds.attempts(type, id);
    return builds[builds.length - 1]?.state === 'running' ? 'running' : 'active';
  }

  /** Until this master settles the job, or `ms` passed (another master's doing shows only in the queue). */
  private settledOrTick(type: string, id: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const ac = new AbortController();
      const onSettled = (q: string, j: string) => q === type && j === id && ac.abort();
      ac.signal.addEventListener('abort', () => {
        this.d.dispatcher.off('job-settled', onSettled);
        resolve();
      });
      this.d.dispatcher.on('job-settled', onSettled);
      this.d.clock.sleep(ms, ac.signal).then(
        () => ac.abort(),
        () => undefined,
      );
    });
  }
}

function wasOf(out: CancelWaitingOutcome): string {
  return out === 'prioritized' ? 'waiting' : out;
}

function finishedError(id: string, state: string, job: Pick<Job, 'failedReason'> | undefined): JobFinishedError {
  const how = state === 'failed' && isCancelReason(job?.failedReason) ? `cancelled (${job!.failedReason})` : state;
  return new JobFinishedError(`job ${id} has finished: ${how}; nothing to cancel`);
}

