import type { Readable } from 'node:stream';
import { BackgroundLoop, equalJitterDelay, type BackoffPolicy, type Clock, type Logger } from '../lib';
import { objectKey, type ObjectKind } from './object-keys';
import { S3TierError, type ObjectStore } from './s3-objects';
import type { UploadJournal } from './upload-journal';

/** Options of {@link UploadQueue}. */
export interface UploadQueueOptions {
  journal: UploadJournal;
  objects: ObjectStore;
  /** Key prefix in the bucket (empty, or ending in "/"). */
  prefix: string;
  /** A CAS blob's bytes from the local store at upload time; undefined once it is gone there. */
  readBlob(hash: string): Promise<{ body: Buffer | Readable; size: number } | undefined>;
  /** Pending uploads held at most; past it a write stays local only (counted, logged). */
  maxQueued: number;
  /** Uploads in flight at once. */
  concurrency: number;
  /** Pause after failures in a row (the whole queue waits: S3 is down for all of it). */
  backoff: BackoffPolicy;
  /** Longest one upload may take before it is aborted and retried, plus a second per MiB. */
  timeoutMs: number;
  clock: Clock;
  log: Logger;
  /** Told of every failed S3 call, by code. */
  onError(code: string): void;
  /** Told once S3 holds `kind/hash`. */
  onUploaded?(kind: ObjectKind, hash: string, size: number): void;
  /** @defaultValue Math.random */
  random?: () => number;
}

/** Counters for metrics and tests. */
export interface UploadQueueStats {
  depth: number;
  /** Age of the oldest pending upload (0 when none): how far S3 lags behind this master. */
  oldestAgeMs: number;
  uploaded: number;
  /** Writes never queued because the queue was full. */
  dropped: number;
  /** CAS blobs evicted locally before their upload ran (nothing left to send). */
  goneLocally: number;
  failures: number;
}

const MIB_PER_SECOND = 1024 * 1024;

interface Pending {
  kind: ObjectKind;
  hash: string;
  since: number;
  /** Bumped when the entry is queued again, so an upload of older bytes does not clear it. */
  generation: number;
}

/**
 * The write-through half of the S3 tier: pending uploads in journal order, a bounded number in
 * flight, each retried until S3 holds it. A failure pauses the whole queue with exponential
 * backoff (an outage fails every upload alike, so hammering it helps nobody); the journal on
 * disk keeps every entry across restarts, so an outage or a crash delays uploads but loses none.
 */
export class UploadQueue {
  private readonly pending = new Map<string, Pending>();
  private readonly inFlight = new Set<string>();
  private readonly loop: BackgroundLoop;
  private failuresInRow = 0;
  private pausedUntil = 0;
  private readonly counters = { uploaded: 0, dropped: 0, goneLocally: 0, failures: 0 };
  private readonly random: () => number;

  constructor(private readonly o: UploadQueueOptions) {
    this.random = o.random ?? Math.random;
    this.loop = new BackgroundLoop({
      name: 'cas-s3-upload',
      everyMs: 1000,
      run: (signal) => this.drain(signal),
      clock: o.clock,
      log: o.log,
      errorEvent: 'cas.s3-upload-failed',
      runAtStart: true,
    });
  }

  /** Replays the journal, then uploads in the background. */
  async start(): Promise<void> {
    for (const e of await this.o.journal.load()) this.pending.set(keyOf(e.kind, e.hash), { ...e, generation: 0 });
    if (this.pending.size > 0) this.o.log.info('cas.s3-journal-replayed', { entries: this.pending.size });
    this.loop.start();
  }

  /** Stops uploading; what is still pending stays in the journal for the next start. */
  stop(): Promise<void> {
    return this.loop.stop();
  }

  /**
   * Durably queues `kind/hash` (with `bytes` for an action-cache entry); resolves once the
   * journal holds it, false (nothing queued) when the queue is full.
   */
  async enqueue(kind: ObjectKind, hash: string, bytes?: Buffer): Promise<boolean> {
    const key = keyOf(kind, hash);
    const held = this.pending.get(key);
    if (!held && this.pending.size >= this.o.maxQueued) {
      this.counters.dropped++;
      this.o.log.warn('cas.s3-queue-full', { kind, hash, depth: this.pending.size, maxQueued: this.o.maxQueued });
      return false;
    }
    await this.o.journal.add(kind, hash, bytes);
    const now = this.o.clock.now();
    if (held) held.generation++;
    else this.pending.set(key, { kind, hash, since: now, generation: 0 });
    this.loop.kick();
    return true;
  }

  /** True while `kind/hash` waits for (or is in) its upload. */
  isPending(kind: ObjectKind, hash: string): boolean {
    return this.pending.has(keyOf(kind, hash));
  }

  stats(): UploadQueueStats {
    const oldest = this.pending.values().next();
    return {
      depth: this.pending.size,
      oldestAgeMs: oldest.done ? 0 : Math.max(0, this.o.clock.now() - oldest.value.since),
      ...this.counters,
    };
  }

  private async drain(signal: AbortSignal): Promise<{ afterMs: number } | void> {
    const wait = this.pausedUntil - this.o.clock.now();
    if (wait > 0) return { afterMs: wait };
    const worker = async (): Promise<void> => {
      // Checked before taking an entry: one taken is in flight until its upload settles.
      while (!signal.aborted && this.pausedUntil <= this.o.clock.now()) {
        const next = this.nextDue();
        if (!next) return;
        await this.uploadOne(next, signal);
      }
    };
    await Promise.all(Array.from({ length: this.o.concurrency }, worker));
    const pause = this.pausedUntil - this.o.clock.now();
    if (pause > 0) return { afterMs: pause };
  }

  private nextDue(): Pending | undefined {
    for (const [key, p] of this.pending) {
      if (this.inFlight.has(key)) continue;
      this.inFlight.add(key);
      return p;
    }
    return undefined;
  }

  private async uploadOne(p: Pending, loopSignal: AbortSignal): Promise<void> {
    const key = keyOf(p.kind, p.hash);
    const generation = p.generation;
    let body: { body: Buffer | Readable; size: number } | undefined;
    try {
      body = await this.bodyOf(p);
      if (!body) {
        this.counters.goneLocally++;
        this.o.log.warn('cas.s3-upload-skipped', { kind: p.kind, hash: p.hash, reason: 'gone from the local store before its upload' });
      } else {
        // A large blob takes longer: the timeout allows at least 1 MiB/s on top of the base.
        const signal = AbortSignal.any([loopSignal, AbortSignal.timeout(this.o.timeoutMs + Math.ceil(body.size / MIB_PER_SECOND) * 1000)]);
        await this.o.objects.put(objectKey(this.o.prefix, p.kind, p.hash), body.body, body.size, signal);
        this.counters.uploaded++;
        this.o.onUploaded?.(p.kind, p.hash, body.size);
      }
      this.failuresInRow = 0;
      if (p.generation === generation) {
        this.pending.delete(key);
        await this.o.journal.remove(p.kind, p.hash);
      }
    } catch (err) {
      if (body && !Buffer.isBuffer(body.body)) body.body.destroy();
      if (loopSignal.aborted) return;
      const code = err instanceof S3TierError ? err.s3Code : ((err as { name?: string }).name ?? 'unknown');
      this.counters.failures++;
      this.o.onError(code);
      this.failuresInRow++;
      const pauseMs = equalJitterDelay(this.failuresInRow, this.o.backoff, this.random);
      this.pausedUntil = Math.max(this.pausedUntil, this.o.clock.now() + pauseMs);
      this.o.log.warn('cas.s3-upload-retry', { kind: p.kind, hash: p.hash, code, failuresInRow: this.failuresInRow, pauseMs, depth: this.pending.size });
    } finally {
      this.inFlight.delete(key);
    }
  }

  private async bodyOf(p: Pending): Promise<{ body: Buffer | Readable; size: number } | undefined> {
    if (p.kind === 'cas') return this.o.readBlob(p.hash);
    const bytes = await this.o.journal.read(p.kind, p.hash);
    return bytes && { body: bytes, size: bytes.length };
  }
}

function keyOf(kind: ObjectKind, hash: string): string {
  return `${kind}/${hash}`;
}
