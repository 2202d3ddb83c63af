import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import { BackgroundLoop, RepeatLog, type Clock, type Logger } from '../lib';
import type { BacklogSnapshot } from './backlog-snapshot';
import { TypeWatch } from './type-watch';

/** Options of {@link QueueMonitor}. */
export interface QueueMonitorOptions {
  /**
   * Where the queues live. Given a URL, the monitor opens (and on `stop()` closes) its own
   * connection; given a client, it shares it for reads and leaves it open. Each job type's
   * event subscription always gets a dedicated connection, as a blocking XREAD needs.
   */
  connection: { url: string } | Redis;
  /** BullMQ key prefix (`config.redis.queuePrefix`). */
  prefix: string;
  /** Job types to watch; each is a BullMQ queue of that name. */
  types: readonly string[];
  clock: Clock;
  log: Logger;
  /**
   * Period of the reconciliation pass, which re-reads every type in case events were missed
   * (across a Redis reconnect, for instance) and lets `oldestWaitMs` grow while nothing happens.
   * @defaultValue 5000
   */
  reconcileMs?: number;
  /**
   * How long a burst of queue events for one type is gathered before its backlog is re-read.
   * @defaultValue 25
   */
  debounceMs?: number;
}

/** Events of {@link QueueMonitor}. */
export interface QueueMonitorEvents {
  /** A type's backlog was (re-)read; emitted after every read, changed or not. */
  snapshot: [BacklogSnapshot];
}

/**
 * Watches the BullMQ queue of every job type and emits a {@link BacklogSnapshot} shortly after
 * each change (driven by QueueEvents, debounced per type) and on a periodic reconciliation pass.
 * Read-only: it never takes, moves or removes a job.
 */
export class QueueMonitor extends EventEmitter<QueueMonitorEvents> {
  private readonly log: Logger;
  private readonly reconcileMs: number;
  private readonly debounceMs: number;
  private types: string[];
  private readonly watches = new Map<string, TypeWatch>();
  private readonly snapshots = new Map<string, BacklogSnapshot>();
  private redis: { client: Redis; owned: boolean } | undefined;
  private loop: BackgroundLoop | undefined;
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  /** Bumped by every start and stop, so a start overtaken by a stop gives up quietly. */
  private generation = 0;

  constructor(private readonly opts: QueueMonitorOptions) {
    super();
    this.log = opts.log.child({ component: 'queue-monitor' });
    this.reconcileMs = opts.reconcileMs ?? 5000;
    this.debounceMs = opts.debounceMs ?? 25;
    this.types = unique(opts.types);
  }

  /**
   * Starts watching. Resolves once every type's event subscription is ready and its first
   * snapshot has been emitted; rejects (with everything closed again) if a type cannot be read.
   * Calling it again while started returns the same promise.
   */
  start(): Promise<void> {
    this.starting ??= this.doStart(++this.generation);
    return this.starting;
  }

  /** Stops watching and closes every connection the monitor opened. Idempotent. */
  async stop(): Promise<void> {
    if (!this.starting) return this.stopping;
    this.starting = undefined;
    this.generation++;
    this.stopping = this.doStop();
    return this.stopping;
  }

  /** The latest snapshot of `type`, or undefined before its first read or when not watched. */
  current(type: string): BacklogSnapshot | undefined {
    return this.snapshots.get(type);
  }

  /**
   * Reads `type` now (sharing a read already in flight) and returns its snapshot: for a
   * decision that must not act on a backlog a moment old, e.g. one a new agent just took.
   */
  async refresh(type: string): Promise<BacklogSnapshot | undefined> {
    await this.watches.get(type)?.refresh();
    return this.current(type);
  }

  /** The latest snapshot of every watched type that has been read. */
  all(): BacklogSnapshot[] {
    return [...this.snapshots.values()];
  }

  /**
   * Replaces the set of watched types. While started, new types are subscribed to (the promise
   * resolves after their first snapshot) and dropped ones closed and forgotten. A type that
   * fails to start is logged and retried by the next reconciliation pass.
   */
  async setTypes(types: readonly string[]): Promise<void> {
    this.types = unique(types);
    if (this.starting) await this.sync(false);
  }

  private async doStart(generation: number): Promise<void> {
    if (this.stopping) await this.stopping;
    if (generation !== this.generation) return;
    const { connection } = this.opts;
    if (isUrl(connection)) {
      // Named so CLIENT LIST tells an operator (and a test) which connections are ours.
      const client = new Redis(connection.url, { maxRetriesPerRequest: null, connectionName: `${this.opts.prefix}:queue-monitor` });
      // Every reconnect attempt during an outage repeats the error: one line per window.
      const repeats = new RepeatLog(this.log, this.opts.clock);
      client.on('error', (error) => repeats.warn('queue-monitor.redis-error', error.message, { error }));
      client.on('ready', () => repeats.flush());
      this.redis = { client, owned: true };
    } else {
      this.redis = { client: connection, owned: false };
    }
    try {
      await this.sync(true);
    } catch (error) {
      if (generation !== this.generation) return;
      await this.stop();
      throw error;
    }
    if (generation !== this.generation) return;
    this.loop = new BackgroundLoop({
      name: 'queue-monitor',
      everyMs: this.reconcileMs,
      run: () => this.reconcile(),
      clock: this.opts.clock,
      log: this.log,
      errorEvent: 'queue-monitor.refresh-failed',
    });
    this.loop.start();
    this.log.info('queue-monitor.started', { types: this.types, reconcileMs: this.reconcileMs });
  }

  private async doStop(): Promise<void> {
    const loop = this.loop;
    this.loop = undefined;
    await loop?.stop();
    const watches = [...this.watches.values()];
    this.watches.clear();
    this.snapshots.clear();
    await Promise.all(watches.map((w) => w.close()));
    const redis = this.redis;
    this.redis = undefined;
    if (redis?.owned) await closeClient(redis.client);
    this.log.info('queue-monitor.stopped', {});
  }

  /**
   * Brings the watches in line with `types`. With `strict` (start), the first failure rejects;
   * otherwise failures are logged and the failed type is left for the next pass to retry.
   */
  private async sync(strict: boolean): Promise<void> {
    const wanted = new Set(this.types);
    const dropped = [...this.watches.values()].filter((w) => !wanted.has(w.type));
    const added = this.types.filter((t) => !this.watches.has(t));
    const work = [...dropped.map((w) => this.unwatch(w)), ...added.map((t) => this.watch(t))];
    if (strict) {
      await Promise.all(work);
      return;
    }
    const results = await Promise.allSettled(work);
    results.forEach((r, i) => {
      if (r.status === 'rejected') {
        const type = i < dropped.length ? dropped[i]!.type : added[i - dropped.length]!;
        this.log.warn('queue-monitor.watch-failed', { type, error: r.reason });
      }
    });
  }

  private async watch(type: string): Promise<void> {
    const redis = this.redis;
    if (!redis) return;
    // Registered before the first await, so a concurrent sync sees the type as taken care of.
    const watch: TypeWatch = new TypeWatch({
      type,
      connection: redis.client,
      prefix: this.opts.prefix,
      clock: this.opts.clock,
      log: this.log,
      debounceMs: this.debounceMs,
      onSnapshot: (snapshot) => this.accept(watch, snapshot),
    });
    this.watches.set(type, watch);
    try {
      await watch.start();
    } catch (error) {
      if (this.watches.get(type) === watch) this.watches.delete(type);
      await watch.close();
      throw error;
    }
    if (this.watches.get(type) === watch) this.log.info('queue-monitor.type-added', { type });
  }

  private async unwatch(watch: TypeWatch): Promise<void> {
    if (this.watches.get(watch.type) === watch) this.watches.delete(watch.type);
    this.snapshots.delete(watch.type);
    await watch.close();
    this.log.info('queue-monitor.type-removed', { type: watch.type });
  }

  /** Keeps and emits a snapshot, unless its watch was dropped while the read was in flight. */
  private accept(watch: TypeWatch, snapshot: BacklogSnapshot): void {
    if (this.watches.get(snapshot.type) !== watch) return;
    this.snapshots.set(snapshot.type, snapshot);
    try {
      this.emit('snapshot', snapshot);
    } catch (error) {
      // A listener's bug is not a failed read; it must not be retried or blamed on Redis.
      this.log.error('queue-monitor.listener-failed', { type: snapshot.type, error });
    }
  }

  /** One pass: retry types that failed to start, then re-read every type. Never rejects. */
  private async reconcile(): Promise<void> {
    await this.sync(false);
    await Promise.all(
      [...this.watches.values()].map((w) => w.refresh().catch((error: unknown) => w.refreshFailed(error))),
    );
  }
}

function isUrl(connection: { url: string } | Redis): connection is { url: string } {
  return !(connection instanceof Redis) && typeof (connection as { url?: unknown }).url === 'string';
}

function unique(types: readonly string[]): string[] {
  return [...new Set(types)];
}

/** QUIT when connected, so replies still in flight arrive; otherwise drop the reconnect attempts. */
async function closeClient(client: Redis): Promise<void> {
  if (client.status === 'ready') {
    await client.quit().catch(() => client.disconnect());
  } else {
    client.disconnect();
  }
}
