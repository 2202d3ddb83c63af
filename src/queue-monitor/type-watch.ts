import { Queue, QueueEvents, type Job, type RedisOptions as BullRedisOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { RepeatLog, type Clock, type Logger } from '../lib';
import { toSnapshot, type BacklogSnapshot } from './backlog-snapshot';

/**
 * The QueueEvents events after which a type's counts or oldest wait may have changed. Progress,
 * deduplication and the per-job `event:id` forms change neither.
 */
const CHANGE_EVENTS = [
  'added',
  'waiting',
  'delayed',
  'active',
  'stalled',
  'completed',
  'failed',
  'removed',
  'cleaned',
  'drained',
  'paused',
  'resumed',
] as const;

export interface TypeWatchOptions {
  type: string;
  /** Shared by every type's Queue; QueueEvents gets its own connection made from its options. */
  connection: Redis;
  prefix: string;
  clock: Clock;
  log: Logger;
  debounceMs: number;
  onSnapshot: (snapshot: BacklogSnapshot) => void;
}

/**
 * One job type under watch: a Queue to read counts from, a QueueEvents to hear about changes,
 * and the coalescing of both into at most one read in flight per type.
 */
export class TypeWatch {
  private readonly queue: Queue;
  private events: QueueEvents | undefined;
  private debounce: AbortController | undefined;
  private reading: Promise<void> | undefined;
  private rereading: Promise<void> | undefined;
  private closed = false;
  /** Queue and QueueEvents repeat their error on every reconnect attempt during an outage. */
  private readonly repeats: RepeatLog;

  constructor(private readonly opts: TypeWatchOptions) {
    this.repeats = new RepeatLog(opts.log, opts.clock);
    this.queue = new Queue(opts.type, { connection: opts.connection, prefix: opts.prefix });
    this.queue.on('error', (error) => this.redisError(error));
  }

  get type(): string {
    return this.opts.type;
  }

  /** Subscribes to the type's events and emits its first snapshot. */
  async start(): Promise<void> {
    await this.queue.waitUntilReady();
    // Reading on from the stream's current last id, instead of QueueEvents' default '$', means
    // an event written between this point and the first XREAD is still delivered: the first
    // snapshot below cannot miss a job that the event stream does not report.
    const [last] = await this.opts.connection.xrevrange(this.queue.keys.events, '+', '-', 'COUNT', 1);
    if (this.closed) return;
    const events = new QueueEvents(this.opts.type, {
      // bullmq refuses a blocking connection that gives up on commands, and would duplicate a
      // client we pass with its retry limit; options make it build (and own) a fitting one.
      connection: this.eventsConnectionOptions(),
      prefix: this.opts.prefix,
      autorun: false,
      lastEventId: last?.[0] ?? '0-0',
    });
    this.events = events;
    events.on('error', (error) => this.redisError(error));
    for (const name of CHANGE_EVENTS) events.on(name, this.poke);
    await events.waitUntilReady();
    if (this.closed) return;
    events.run().catch((error: unknown) => this.redisError(error));
    await this.refresh();
  }

  /**
   * Reads the type's backlog and emits it. Calls made while a read is in flight share one
   * follow-up read that starts after it, so a change is never answered by an older read and
   * reads never overlap.
   */
  refresh(): Promise<void> {
    if (!this.reading) {
      this.reading = this.readAndEmit().finally(() => {
        this.reading = undefined;
      });
      return this.reading;
    }
    this.rereading ??= this.reading
      .catch(() => undefined)
      .then(() => {
        this.rereading = undefined;
        return this.refresh();
      });
    return this.rereading;
  }

  /** Stops listening; a read still in flight is abandoned, never emitted. */
  async close(): Promise<void> {
    this.closed = true;
    this.debounce?.abort();
    this.debounce = undefined;
    const events = this.events;
    this.events = undefined;
    await Promise.allSettled([events?.close(), this.queue.close()]);
  }

  /**
   * Coalesces a burst of events into one read `debounceMs` after the first of them. The window
   * is not restarted by later events, so a steady stream of jobs still yields a read per
   * window. On the injected clock like every other wait, so a test ends the window when it
   * chooses and the snapshot's time is the clock's.
   */
  private readonly poke = (): void => {
    if (this.closed || this.debounce) return;
    const window = new AbortController();
    this.debounce = window;
    this.opts.clock.sleep(this.opts.debounceMs, window.signal).then(
      () => {
        this.debounce = undefined;
        this.refresh().catch((error: unknown) => this.refreshFailed(error));
      },
      () => undefined,
    );
  };

  private async readAndEmit(): Promise<void> {
    const [counts, heads, tails] = await Promise.all([
      this.queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active'),
      // Producers LPUSH and workers take from the right, so the wait list's right end is its
      // oldest job; the prioritized set's first member is the oldest of the highest priority.
      this.queue.getJobs(['waiting', 'prioritized'], 0, 0, true),
      // LIFO jobs are RPUSHed instead, so in an all-LIFO list the oldest sits at the left end.
      // Ends only, not a scan: a read runs after every burst of events and must stay O(1).
      this.queue.getJobs(['waiting'], 0, 0, false),
    ]);
    if (this.closed) return;
    const queuedAt = [...heads, ...tails].map((job: Job) => job.timestamp);
    this.opts.onSnapshot(toSnapshot(this.opts.type, counts, queuedAt, this.opts.clock.now()));
    // A read went through: Redis is back, so the errors counted meanwhile are reported.
    this.repeats.flush();
  }

  /** Reports a failed read unless it failed because we were closing. */
  refreshFailed(error: unknown): void {
    if (this.closed) return;
    this.opts.log.warn('queue-monitor.refresh-failed', { type: this.opts.type, error });
  }

  private redisError(error: unknown): void {
    if (this.closed) return;
    this.repeats.warn('queue-monitor.redis-error', (error as Error)?.message ?? String(error), { type: this.opts.type, error });
  }

  /**
   * The shared client's options, fit for a blocking connection: no retry limit per command,
   * and no `retryStrategy: null` (which bullmq's option type rejects; its default, reconnecting
   * with backoff, is what an event subscription wants anyway).
   */
  private eventsConnectionOptions(): BullRedisOptions {
    const { retryStrategy, ...rest } = this.opts.connection.options;
    return { ...rest, ...(retryStrategy ? { retryStrategy } : {}), maxRetriesPerRequest: null };
  }
}
