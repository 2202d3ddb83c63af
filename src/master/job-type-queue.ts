import { Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';

export interface JobTypeQueueOptions {
  type: string;
  connection: Redis;
  prefix: string;
  /** How long a fetched job stays ours without renewal; a crashed master's jobs return after it. */
  lockMs: number;
  /** Names the lock tokens, so a token says which master took the job. */
  masterId: string;
}

/**
 * One job type's BullMQ queue as the master consumes it. The Worker runs in manual mode: the
 * master takes a job only when an agent can run it and renews the lock itself while the
 * build runs on the agent, so BullMQ's stalled-job check returns the jobs of a crashed master.
 */
export class JobTypeQueue {
  readonly queue: Queue;
  readonly worker: Worker;
  private seq = 0;

  constructor(readonly opts: JobTypeQueueOptions) {
    this.queue = new Queue(opts.type, { connection: opts.connection, prefix: opts.prefix });
    this.worker = new Worker(opts.type, null, {
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

  /** Takes the next job, waiting for one to arrive; undefined on timeout or shutdown. */
  async take(): Promise<{ job: Job; token: string } | undefined> {
    const token = `${this.opts.masterId}:${++this.seq}`;
    const job = await this.worker.getNextJob(token, { block: true });
    return job ? { job, token } : undefined;
  }

  /** Renews the locks we hold; returns the ids whose lock was lost (another master or the stall check took them). */
  async renew(held: ReadonlyArray<{ jobId: string; token: string }>): Promise<string[]> {
    if (held.length === 0) return [];
    return this.worker.extendJobLocks(
      held.map((h) => h.jobId),
      held.map((h) => h.token),
      this.opts.lockMs,
    );
  }

  async getJob(id: string): Promise<Job | undefined> {
    return (await Job.fromId(this.queue, id)) ?? undefined;
  }

  /** Stops taking jobs; interrupts a blocked `take`. Held locks stay valid. */
  async stopTaking(): Promise<void> {
    await this.worker.close(true);
  }

  /** Returns a job we took but never ran to the head of the wait list. */
  async giveBack(jobId: string, token: string): Promise<void> {
    const job = await this.getJob(jobId);
    await job?.moveToWait(token);
  }

  async close(): Promise<void> {
    await this.worker.close(true);
    await this.queue.close();
  }
}
