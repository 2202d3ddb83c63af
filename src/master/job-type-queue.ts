import { randomBytes } from 'node:crypto';
import { Job, Queue, UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import { runScript } from '../lib';
import { TakingWorker } from './bullmq-internals';
import type { JobQueue, QueuedJob, QueuedJobEnd, TakenJob } from './job-queue';
import { CANCEL_WAITING_SCRIPT } from './lua/cancel-waiting-script';

/** What `cancelWaiting` found: the first three it cancelled; the others it left alone. */
export type CancelWaitingOutcome = 'waiting' | 'prioritized' | 'delayed' | 'active' | 'completed' | 'failed' | 'missing' | 'unknown';
const OUTCOMES: ReadonlySet<string> = new Set<CancelWaitingOutcome>(['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed', 'missing', 'unknown']);

export interface JobTypeQueueOptions {
  type: string;
  connection: Redis;
  /**
   * The connection the API submits and looks jobs up through: one without an offline queue,
   * so a call fails at once while Redis is down instead of waiting for the reconnect.
   * @defaultValue `connection`
   */
  apiConnection?: Redis;
  prefix: string;
  /** How long a fetched job stays ours without renewal; a crashed master's jobs return after it. */
  lockMs: number;
  /** Names this master's BullMQ worker (as BullMQ tooling shows it); never part of a lock token. */
  masterId: string;
}

/**
 * One job type's BullMQ queue as the master consumes it. The Worker runs in manual mode: the
 * master takes a job only when an agent can run it and renews the lock itself while the
 * build runs on the agent, so BullMQ's stalled-job check returns the jobs of a crashed master.
 */
export class JobTypeQueue implements JobQueue {
  readonly queue: Queue;
  /** The same queue on the API's connection (see {@link JobTypeQueueOptions.apiConnection}). */
  readonly apiQueue: Queue;
  readonly worker: TakingWorker;
  /**
   * The BullMQ jobs taken and not yet settled: BullMQ decides retries from the attempt counts
   * of the Job object it is given, so settling uses the one it handed out (and saves a read).
   */
  private readonly taken = new Map<string, Job>();

  constructor(readonly opts: JobTypeQueueOptions) {
    this.queue = new Queue(opts.type, { connection: opts.connection, prefix: opts.prefix });
    this.apiQueue = opts.apiConnection ? new Queue(opts.type, { connection: opts.apiConnection, prefix: opts.prefix }) : this.queue;
    this.worker = new TakingWorker(opts.type, null, {
      connection: opts.connection,
      prefix: opts.prefix,
      autorun: false,
      lockDuration: opts.lockMs,
      stalledInterval: opts.lockMs,
      // One crash of the master holding a job is forgiven; a job that keeps stalling fails.
      maxStalledCount: 2,
      name: opts.masterId,
    });
  }

  get type(): string {
    return this.opts.type;
  }

  async start(): Promise<void> {
    await this.worker.waitUntilReady();
    await this.worker.startStalledCheckTimer();
  }

  async take(): Promise<TakenJob | undefined> {
    // The token is the job's lock: whoever knows it can settle the job, so it must not be
    // derivable from anything public (a counter, the master id): 128 random bits.
    const token = randomBytes(16).toString('hex');
    const job = await this.worker.getNextJob(token, { block: true });
    if (!job) return undefined;
    this.taken.set(job.id!, job);
    return { job: snapshot(job), token };
  }

  async renew(held: ReadonlyArray<{ jobId: string; token: string }>): Promise<string[]> {
    if (held.length === 0) return [];
    const lost = await this.worker.extendJobLocks(
      held.map((h) => h.jobId),
      held.map((h) => h.token),
      this.opts.lockMs,
    );
    for (const id of lost) this.taken.delete(id);
    return lost;
  }

  async get(id: string): Promise<QueuedJob | undefined> {
    const job = await this.bullJob(id);
    return job && snapshot(job);
  }

  /** The BullMQ job itself, for the job service's views. */
  async getJob(id: string): Promise<Job | undefined> {
    return (await Job.fromId(this.queue, id)) ?? undefined;
  }

  async endOf(id: string): Promise<QueuedJobEnd> {
    const job = await this.getJob(id);
    const state = job ? await job.getState() : 'unknown';
    if (job && state === 'completed') return { state, returnValue: job.returnvalue };
    if (job && state === 'failed') return { state, failedReason: job.failedReason };
    return { state: 'other' };
  }

  /**
   * Fails the job with `reason` if no master holds it (waiting, prioritized, delayed), on the
   * API's connection, atomically with BullMQ taking jobs: a job taken at this very moment is
   * left alone (`active`), for its master to cancel.
   */
  async cancelWaiting(jobId: string, reason: string, now: number): Promise<CancelWaitingOutcome> {
    const k = this.apiQueue.keys;
    const keys = [k.wait!, k.paused!, k.prioritized!, k.delayed!, k.failed!, k.completed!, k.active!, this.apiQueue.toKey(jobId), k.events!, k.meta!];
    const out = String(await runScript(this.opts.apiConnection ?? this.opts.connection, CANCEL_WAITING_SCRIPT, keys, [jobId, now, reason, k['']!]));
    if (!OUTCOMES.has(out)) throw new Error(`cancel script answered ${out}`);
    return out as CancelWaitingOutcome;
  }

  async stopTaking(): Promise<void> {
    await this.worker.close(true);
  }

  async giveBack(jobId: string, token: string): Promise<void> {
    const job = await this.bullJob(jobId);
    this.taken.delete(jobId);
    await job?.moveToWait(token);
  }

  async park(jobId: string, token: string, untilMs: number): Promise<void> {
    const job = await this.settling(jobId);
    await job.moveToDelayed(untilMs, token);
  }

  async promote(jobId: string): Promise<boolean> {
    const job = await this.getJob(jobId);
    if (!job || !(await job.isDelayed())) return false;
    // Another master may promote or take it first: that is as good.
    return job.promote().then(
      () => true,
      () => false,
    );
  }

  async complete(jobId: string, token: string, value: unknown): Promise<void> {
    const job = await this.settling(jobId);
    await job.moveToCompleted(value, token, false);
  }

  async completeAndTake(jobId: string, token: string, value: unknown): Promise<TakenJob | undefined> {
    const job = this.taken.get(jobId);
    // Only a Job the worker made carries the lock duration the next job's lock is set with: a
    // job read back (taken over after a restart) has the queue's options, and BullMQ's script
    // would fail after completing it (a Lua error keeps the writes made before it).
    if (!job) return void (await this.complete(jobId, token, value));
    this.taken.delete(jobId);
    const next = await this.worker.fetched(await job.moveToCompleted(value, token, true), token);
    if (!next) return undefined;
    this.taken.set(next.id!, next);
    return { job: snapshot(next), token };
  }

  async fail(jobId: string, token: string, reason: string, retry: boolean): Promise<{ retried: boolean; attemptsMade: number }> {
    const job = await this.settling(jobId);
    await job.moveToFailed(retry ? new Error(reason) : new UnrecoverableError(reason), token, false);
    return { retried: retry && job.attemptsMade < (job.opts.attempts ?? 1), attemptsMade: job.attemptsMade };
  }

  async close(): Promise<void> {
    await this.worker.close(true);
    await this.queue.close();
    if (this.apiQueue !== this.queue) await this.apiQueue.close();
    this.taken.clear();
  }

  private async bullJob(id: string): Promise<Job | undefined> {
    return this.taken.get(id) ?? (await this.getJob(id));
  }

  private async settling(id: string): Promise<Job> {
    const job = await this.bullJob(id);
    if (!job) throw new Error('job no longer exists');
    this.taken.delete(id);
    return job;
  }
}

function snapshot(job: Job): QueuedJob {
  return {
    id: job.id!,
    data: job.data,
    timestamp: job.timestamp,
    attemptsMade: job.attemptsMade,
    attemptsStarted: job.attemptsStarted,
    attempts: job.opts.attempts ?? 1,
    processedOn: job.processedOn,
  };
}
