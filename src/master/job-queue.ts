/**
 * A job as the dispatcher sees it when it takes one: a snapshot of what BullMQ stored, without
 * BullMQ's methods, so the dispatcher can be driven by an in-memory queue in tests.
 */
export interface QueuedJob {
  readonly id: string;
  /** The payload as a producer wrote it; validated by the dispatcher, never trusted. */
  readonly data: unknown;
  /** When it was enqueued (ms since the epoch). */
  readonly timestamp: number;
  /** Failed runs so far (BullMQ's attemptsMade). */
  readonly attemptsMade: number;
  /** Times a master took it (BullMQ's attemptsStarted), handed back and restarted runs included. */
  readonly attemptsStarted: number;
  /** Runs allowed in all (BullMQ's opts.attempts). */
  readonly attempts: number;
  /** When a master last took it; undefined if never. */
  readonly processedOn: number | undefined;
}

/** How a job ended according to its queue, for telling a repeated result from a new one. */
export type QueuedJobEnd =
  | { state: 'completed'; returnValue: unknown }
  | { state: 'failed'; failedReason: string }
  | { state: 'other' };

/**
 * One job type's queue as the dispatcher uses it. Every call that changes a job presents the
 * lock token it was taken with; the queue refuses (rejects) a call with a token that does not
 * hold the job's lock.
 */
/** A job taken from its queue and the lock token it is held with. */
export interface TakenJob {
  job: QueuedJob;
  token: string;
}

export interface JobQueue {
  readonly type: string;
  /** Takes the next job with a fresh lock, waiting for one; undefined on timeout or shutdown. */
  take(): Promise<TakenJob | undefined>;
  /** Renews the locks; returns the ids whose lock was lost (another master or the stall check took them). */
  renew(held: ReadonlyArray<{ jobId: string; token: string }>): Promise<string[]>;
  /** Returns a job to the head of its queue without using an attempt. */
  giveBack(jobId: string, token: string): Promise<void>;
  complete(jobId: string, token: string, value: unknown): Promise<void>;
  /**
   * Completes the job and takes the next one in the same round trip, undefined if none came.
   * The next job's lock is `token` itself (BullMQ locks it with the token that settled the
   * last job), so it may go only to whoever was given that token. Optional: a queue without
   * it is settled and taken from in two steps.
   */
  completeAndTake?(jobId: string, token: string, value: unknown): Promise<TakenJob | undefined>;
  /**
   * Fails the run. With `retry` the job goes back to the queue while attempts remain; without,
   * it fails for good. Returns whether it will run again and the failed runs now counted.
   */
  fail(jobId: string, token: string, reason: string, retry: boolean): Promise<{ retried: boolean; attemptsMade: number }>;
  /**
   * Puts a job no agent can run aside until `untilMs` (BullMQ's delayed set): it keeps its
   * attempts, and meanwhile the queue hands out the jobs behind it.
   */
  park(jobId: string, token: string, untilMs: number): Promise<void>;
  /** Makes a parked job takeable now (an agent that can run it arrived); false if it is not parked any more. */
  promote(jobId: string): Promise<boolean>;
  get(jobId: string): Promise<QueuedJob | undefined>;
  endOf(jobId: string): Promise<QueuedJobEnd>;
  /** Stops taking jobs; interrupts a blocked `take`. Held locks stay valid. */
  stopTaking(): Promise<void>;
  close(): Promise<void>;
}
