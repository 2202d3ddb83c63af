import type { Readable } from 'node:stream';
import { mapBounded, SpillwayError, type BackoffPolicy, type Clock, type Logger } from '../lib';
import type { ActionEntryMirror, ActionEntryNamespace } from './action-cache';
import type { BlobReader, BlobStore, ExpectedBlob, PutResult, Source } from './blob-store';
import { EMPTY_DIGEST, type Digest } from './digest';
import { DigestMismatchError } from './errors';
import { objectKey } from './object-keys';
import { S3TierError, type ObjectStore } from './s3-objects';
import { UploadQueue, type UploadQueueStats } from './upload-queue';
import type { UploadJournal } from './upload-journal';

/** Options of {@link S3Tier}. */
export interface S3TierOptions {
  /** The local store (the fast tier): every read tries it first, every fill lands in it. */
  inner: BlobStore;
  objects: ObjectStore;
  journal: UploadJournal;
  /** Key prefix in the bucket: empty, or path segments ending in "/". */
  prefix: string;
  uploads: {
    /** @see UploadQueueOptions.maxQueued */
    maxQueued: number;
    concurrency: number;
    backoff: BackoffPolicy;
  };
  /** Longest one S3 call may take (reads, heads, one upload). */
  timeoutMs: number;
  /** Presence in S3 remembered after an upload, a fill or a HEAD, so FindMissing needs no HEAD. */
  known: { maxEntries: number; ttlMs: number };
  /** Largest action-cache entry read back from S3; larger objects are refused as corrupt. */
  maxEntryBytes: number;
  clock: Clock;
  log: Logger;
}

/** Counters for metrics and tests. */
export interface S3TierStats {
  /** Reads this tier answered from the local store. */
  localHits: number;
  /** Reads filled from S3 (CAS blobs and action-cache entries). */
  s3Hits: number;
  /** Reads found in neither. */
  misses: number;
  /** Objects in S3 that failed verification: never served, never stored locally. */
  corruptObjects: number;
  /** Failed S3 calls by error code (uploads, reads, heads). */
  errors: Record<string, number>;
  uploads: UploadQueueStats;
}

/**
 * The S3 tier (CONVENTIONS 5a): a decorator that puts a bucket behind the local store, so masters
 * that share the bucket share the cache and a new master does not start cold.
 *
 * Writes go through: a PUT is answered once the local store and the upload journal hold it, and
 * the upload runs in the background ({@link UploadQueue}). Reads go through the other way: a
 * local miss is fetched from S3 and streamed into the local store, which hashes it as it
 * writes, so an object that does not match its digest is refused before anyone sees it (and
 * counted); the local copy is then served. Existence (HEAD, FindMissing, the action cache's
 * completeness check) is the union of both tiers, asked of S3 exactly by HeadObject unless a
 * recent upload, fill or HEAD already showed the object. An S3 that cannot be reached is a miss,
 * never an error to the client: the local tier goes on serving. Deletes are local: S3 keeps
 * every object until its lifecycle rule expires it.
 */
export class S3Tier implements BlobStore {
  private readonly queue: UploadQueue;
  private readonly fills = new Map<string, Promise<boolean>>();
  /** Least recently confirmed first; each value is the size and when S3 was last seen to hold it. */
  private readonly known = new Map<string, { size: number; at: number }>();
  private readonly errorCounts = new Map<string, number>();
  private readonly counters = { localHits: 0, s3Hits: 0, misses: 0, corruptObjects: 0 };
  private readonly abort = new AbortController();

  constructor(private readonly o: S3TierOptions) {
    this.queue = new UploadQueue({
      journal: o.journal,
      objects: o.objects,
      prefix: o.prefix,
      readBlob: (hash) => this.readLocal(hash),
      ...o.uploads,
      timeoutMs: o.timeoutMs,
      clock: o.clock,
      log: o.log,
      onError: (code) => this.countError(code),
      onUploaded: (kind, hash, size) => kind === 'cas' && this.remember(hash, size),
    });
  }

  /** Replays the journal and starts uploading. */
  start(): Promise<void> {
    return this.queue.start();
  }

  /** Stops uploading (the journal keeps the rest) and aborts S3 calls in flight. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.queue.stop();
  }

  stats(): S3TierStats {
    return { ...this.counters, errors: Object.fromEntries(this.errorCounts), uploads: this.queue.stats() };
  }

  async put(source: Source, expected?: ExpectedBlob): Promise<PutResult> {
    const result = await this.o.inner.put(source, expected);
    if (result.stored) await this.queue.enqueue('cas', result.digest.hash);
    else this.refresh(result.digest);
    return result;
  }

  /**
   * A blob PUT again that was already local may be missing from S3 (stored before the tier was
   * configured, or expired there by a lifecycle rule while in use here): queue it once more if
   * S3 says it is not there. Not awaited: the blob was acknowledged durably long ago.
   */
  private refresh(d: Digest): void {
    if (d.size === 0 || this.queue.isPending('cas', d.hash) || this.isKnown(d.hash)) return;
    this.inS3(d.hash)
      .then((size) => (size === d.size ? undefined : this.queue.enqueue('cas', d.hash)))
      .catch((err: unknown) => this.o.log.warn('cas.s3-upload-skipped', { kind: 'cas', hash: d.hash, reason: (err as Error).message }));
  }

  async get(hash: string): Promise<BlobReader | undefined> {
    const local = await this.o.inner.get(hash);
    if (local) {
      this.counters.localHits++;
      return local;
    }
    if (!(await this.fill(hash))) {
      this.counters.misses++;
      return undefined;
    }
    const filled = await this.o.inner.get(hash);
    if (filled) this.counters.s3Hits++;
    else this.counters.misses++;
    return filled;
  }

  async has(digest: Digest): Promise<boolean> {
    return (await this.o.inner.has(digest)) || (await this.inS3(digest.hash)) === digest.size;
  }

  async sizeOf(hash: string): Promise<number | undefined> {
    return (await this.o.inner.sizeOf(hash)) ?? (await this.inS3(hash));
  }

  async findMissing(digests: readonly Digest[]): Promise<Digest[]> {
    const locallyMissing = await this.o.inner.findMissing(digests);
    const inS3 = await mapBounded(locallyMissing, 16, async (d) => (await this.inS3(d.hash)) === d.size);
    return locallyMissing.filter((_, i) => !inS3[i]);
  }

  async delete(hash: string): Promise<boolean> {
    this.known.delete(hash);
    return this.o.inner.delete(hash);
  }

  touch(hash: string): boolean {
    return this.o.inner.touch(hash);
  }

  /** The action cache's side of the tier: its entries are queued and read back like blobs. */
  actionEntries(): ActionEntryMirror {
    return {
      written: async (namespace, key, bytes) => {
        await this.queue.enqueue(namespace, key, bytes);
      },
      fetch: (namespace, key) => this.fetchEntry(namespace, key),
      rejected: (namespace, key, reason) => {
        this.counters.corruptObjects++;
        this.counters.s3Hits--;
        this.counters.misses++;
        this.o.log.error('cas.s3-corrupt-object', { kind: namespace, hash: key, reason });
      },
    };
  }

  private async fetchEntry(namespace: ActionEntryNamespace, key: string): Promise<Buffer | undefined> {
    const name = objectKey(this.o.prefix, namespace, key);
    const obj = await this.call('GetObject', (signal) => this.o.objects.get(name, signal));
    if (!obj) return undefined;
    if (obj.size > this.o.maxEntryBytes) {
      obj.stream.destroy();
      this.counters.corruptObjects++;
      this.o.log.error('cas.s3-corrupt-object', { kind: namespace, hash: key, reason: `${obj.size} bytes, more than ${this.o.maxEntryBytes}` });
      return undefined;
    }
    try {
      const chunks: Buffer[] = [];
      let bytes = 0;
      for await (const chunk of obj.stream) {
        bytes += (chunk as Buffer).length;
        // Held in memory, so never more than the length S3 announced (checked against the bound).
        if (bytes > obj.size) throw new S3TierError(`GetObject ${name}: more bytes than its length ${obj.size}`, 'LengthMismatch', true);
        chunks.push(chunk as Buffer);
      }
      this.counters.s3Hits++;
      return Buffer.concat(chunks);
    } catch (err) {
      this.failed('GetObject', err);
      return undefined;
    }
  }

  /** Fetches `hash` from S3 into the local store; true once it is there, verified. */
  private fill(hash: string): Promise<boolean> {
    if (hash === EMPTY_DIGEST.hash) return Promise.resolve(false);
    let running = this.fills.get(hash);
    if (!running) {
      running = this.fetchInto(hash).finally(() => this.fills.delete(hash));
      this.fills.set(hash, running);
    }
    return running;
  }

  private async fetchInto(hash: string): Promise<boolean> {
    const name = objectKey(this.o.prefix, 'cas', hash);
    const obj = await this.call('GetObject', (signal) => this.o.objects.get(name, signal));
    if (!obj) return false;
    try {
      await this.o.inner.put(obj.stream, { hash, size: obj.size });
      this.remember(hash, obj.size);
      return true;
    } catch (err) {
      obj.stream.destroy();
      if (err instanceof DigestMismatchError) {
        this.counters.corruptObjects++;
        this.known.delete(hash);
        this.o.log.error('cas.s3-corrupt-object', { kind: 'cas', hash, size: obj.size, reason: err.message });
        return false;
      }
      // The local store's own refusals (full, bad digest) are the caller's to see.
      if (err instanceof SpillwayError && !(err instanceof S3TierError)) throw err;
      this.failed('GetObject', err);
      return false;
    }
  }

  /** The size of `hash` in S3, or undefined when absent or S3 cannot say. */
  private async inS3(hash: string): Promise<number | undefined> {
    if (hash === EMPTY_DIGEST.hash) return undefined;
    if (this.isKnown(hash)) return this.known.get(hash)!.size;
    const name = objectKey(this.o.prefix, 'cas', hash);
    const size = await this.call('HeadObject', (signal) => this.o.objects.head(name, signal));
    if (size === undefined) this.known.delete(hash);
    else this.remember(hash, size);
    return size;
  }

  private isKnown(hash: string): boolean {
    const seen = this.known.get(hash);
    return seen !== undefined && this.o.clock.now() - seen.at < this.o.known.ttlMs;
  }

  private remember(hash: string, size: number): void {
    this.known.delete(hash);
    this.known.set(hash, { size, at: this.o.clock.now() });
    for (const oldest of this.known.keys()) {
      if (this.known.size <= this.o.known.maxEntries) break;
      this.known.delete(oldest);
    }
  }

  private async readLocal(hash: string): Promise<{ body: Buffer | Readable; size: number } | undefined> {
    const reader = await this.o.inner.get(hash);
    return reader && { body: reader.data ?? reader.stream, size: reader.digest.size };
  }

  /**
   * Runs one S3 read; a failure is counted, logged and read as a miss. The timeout covers the
   * call up to its answer, not the body that follows: a large blob may stream for longer (the
   * client's socket timeout still ends a stalled one).
   */
  private async call<T>(action: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T | undefined> {
    const answer = new AbortController();
    const timer = setTimeout(() => answer.abort(new S3TierError(`${action}: no answer within ${this.o.timeoutMs} ms`, 'TimeoutError', true)), this.o.timeoutMs);
    try {
      return await fn(AbortSignal.any([this.abort.signal, answer.signal]));
    } catch (err) {
      this.failed(action, err);
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  private failed(action: string, err: unknown): void {
    const code = err instanceof S3TierError ? err.s3Code : ((err as { name?: string }).name ?? 'unknown');
    this.countError(code);
    this.o.log.warn('cas.s3-read-failed', { action, code, message: (err as Error).message });
  }

  private countError(code: string): void {
    this.errorCounts.set(code, (this.errorCounts.get(code) ?? 0) + 1);
  }
}
