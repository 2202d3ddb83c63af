import type { JobQueue, QueuedJob, QueuedJobEnd } from '../../src/master/job-queue';

interface Entry {
  job: QueuedJob;
  state: 'waiting' | 'active' | 'delayed' | 'completed' | 'failed';
  lock: string | undefined;
  returnValue?: unknown;
  failedReason?: string;
}

/**
 * An in-memory job queue as strict as BullMQ about locks: every change must quote the token
 * the job was taken with, or it is rejected. `take` blocks until a job is added.
 */
export class FakeJobQueue implements JobQueue {
  private readonly entries = new Map<string, Entry>();
  private readonly waiting: string[] = [];
  private takers: Array<() => void> = [];
  private seq = 0;
  private stopped = false;
  /** Every call, in order, for assertions. */
  readonly calls: string[] = [];

  private gate: Promise<void> | undefined;
  /** With `settleTakes`: completes and takes the next job with the same token, as BullMQ's fetchNext does. */
  readonly completeAndTake?: (jobId: string, token: string, value: unknown) => Promise<{ job: QueuedJob; token: string } | undefined>;

  constructor(
    readonly type: string,
    o: { settleTakes?: boolean } = {},
  ) {
    if (o.settleTakes) {
      this.completeAndTake = async (jobId, token, value) => {
        await this.complete(jobId, token, value);
        const id = this.waiting.shift();
        if (id === undefined) return undefined;
        const e = this.entries.get(id)!;
        Object.assign(e, { state: 'active', lock: token });
        e.job = { ...e.job, attemptsStarted: e.job.attemptsStarted + 1, processedOn: 1 };
        this.calls.push(`take ${id} with ${jobId}'s token`);
        return { job: e.job, token };
      };
    }
  }

  /** Holds every take (those in flight too) until the returned function is called. */
  holdTakes(): () => void {
    let release!: () => void;
    this.gate = new Promise<void>((r) => (release = r));
    return () => {
      this.gate = undefined;
      release();
    };
  }

  add(id: string, data: unknown, o: { attempts?: number; timestamp?: number } = {}): void {
    this.entries.set(id, {
      job: { id, data, timestamp: o.timestamp ?? 0, attemptsMade: 0, attemptsStarted: 0, attempts: o.attempts ?? 1, processedOn: undefined },
      state: 'waiting',
      lock: undefined,
    });
    this.waiting.push(id);
    this.wake();
  }

  stateOf(id: string): Entry['state'] | undefined {
    return this.entries.get(id)?.state;
  }

  entry(id: string): Readonly<Entry> | undefined {
    return this.entries.get(id);
  }

  /** Takes the lock of a job away, as the stall check or another master would. */
  steal(id: string): void {
    const e = this.entries.get(id);
    if (e) e.lock = 'someone-else';
  }

  async take(): Promise<{ job: QueuedJob; token: string } | undefined> {
    for (;;) {
      while (this.gate) await this.gate;
      if (this.stopped || this.waiting.length > 0) break;
      await new Promise<void>((r) => this.takers.push(r));
    }
    if (this.stopped) return undefined;
    const id = this.waiting.shift()!;
    const e = this.entries.get(id)!;
    const token = `fake-${++this.seq}`;
    e.state = 'active';
    e.lock = token;
    e.job = { ...e.job, attemptsStarted: e.job.attemptsStarted + 1, processedOn: 1 };
    this.calls.push(`take ${id}`);
    return { job: e.job, token };
  }

  async renew(held: ReadonlyArray<{ jobId: string; token: string }>): Promise<string[]> {
    return held.filter((h) => this.entries.get(h.jobId)?.lock !== h.token).map((h) => h.jobId);
  }

  async giveBack(jobId: string, token: string): Promise<void> {
    const e = this.locked(jobId, token);
    e.state = 'waiting';
    e.lock = undefined;
    this.waiting.unshift(jobId);
    this.calls.push(`giveBack ${jobId}`);
    this.wake();
  }

  /** Parked jobs come back only when promoted (the fake has no timers; a test promotes by hand). */
  async park(jobId: string, token: string, untilMs: number): Promise<void> {
    const e = this.locked(jobId, token);
    Object.assign(e, { state: 'delayed', lock: undefined, until: untilMs });
    this.calls.push(`park ${jobId}`);
  }

  async promote(jobId: string): Promise<boolean> {
    const e = this.entries.get(jobId);
    if (e?.state !== 'delayed') return false;
    e.state = 'waiting';
    this.waiting.push(jobId);
    this.calls.push(`promote ${jobId}`);
    this.wake();
    return true;
  }

  async complete(jobId: string, token: string, value: unknown): Promise<void> {
    const e = this.locked(jobId, token);
    Object.assign(e, { state: 'completed', lock: undefined, returnValue: value });
    this.calls.push(`complete ${jobId}`);
  }

  async fail(jobId: string, token: string, reason: string, retry: boolean): Promise<{ retried: boolean; attemptsMade: number }> {
    const e = this.locked(jobId, token);
    e.job = { ...e.job, attemptsMade: e.job.attemptsMade + 1 };
    const retried = retry && e.job.attemptsMade < e.job.attempts;
    Object.assign(e, { state: retried ? 'waiting' : 'failed', lock: undefined, failedReason: reason });
    if (retried) (this.waiting.push(jobId), this.wake());
    this.calls.push(`fail ${jobId}`);
    return { retried, attemptsMade: e.job.attemptsMade };
  }

  async get(jobId: string): Promise<QueuedJob | undefined> {
    return this.entries.get(jobId)?.job;
  }

  async endOf(jobId: string): Promise<QueuedJobEnd> {
    const e = this.entries.get(jobId);
    if (e?.state === 'completed') return { state: 'completed', returnValue: e.returnValue };
    if (e?.state === 'failed') return { state: 'failed', failedReason: e.failedReason ?? '' };
    return { state: 'other' };
  }

  async stopTaking(): Promise<void> {
    this.stopped = true;
    this.wake();
  }

  async close(): Promise<void> {
    await this.stopTaking();
  }

  private locked(jobId: string, token: string): Entry {
    const e = this.entries.get(jobId);
    if (!e) throw new Error(`Missing key for job ${jobId}`);
    if (e.state !== 'active' || e.lock !== token) throw new Error(`Missing lock for job ${jobId}`);
    return e;
  }

  private wake(): void {
    const t = this.takers;
    this.takers = [];
    t.forEach((r) => r());
  }
}
