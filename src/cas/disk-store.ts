import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { EMPTY_DIGEST, uniqueDigests, type Digest } from './digest';
import { mapBounded } from '../lib';
import { checkExpected, checkHash, writeExpectedTemp } from './hashed-temp-file';
import { DiskIndex } from './disk-index';
import { DiskSpace } from './disk-space';
import { VerifiedReads } from './verified-reads';
import { blobFilePath, createBlobDirs } from './blob-dirs';
import { BlobSync, realCommitFs, type CommitFs } from './blob-sync';
import { readBlobData, type BlobReader, type BlobStore, type ExpectedBlob, type PutResult, type Source } from './blob-store';
import type { DiskStoreOptions, DiskStoreStats } from './disk-store-options';

export type { DiskStoreOptions, DiskStoreStats } from './disk-store-options';

const VERIFY_FIRST_MAX_BYTES = 64 * 1024 * 1024;
/** Stats of one findMissing in flight at once (the libuv pool has 4 threads; more only queue there). */
const FIND_MISSING_CONCURRENCY = 8;

/**
 * A content-addressed blob store on local disk with size-bounded LRU eviction.
 *
 * Writes stream to a temp file while hashing, are renamed into place only when the bytes match
 * their digest, and fsynced after the rename (in groups, see {@link BlobSync}). A blob is
 * verified the first time it is read after `open()` (not at startup, not on every hit): up to
 * `verifyFirstMaxBytes` before its first byte is handed out, above that while it streams (see {@link VerifyStream}). A corrupt file is removed and counted.
 * The empty blob is always present and never stored.
 */
export class DiskStore implements BlobStore {
  private readonly reads: VerifiedReads;
  private readonly removedListeners: Array<(hash: string) => void> = [];
  private readonly space: DiskSpace;
  /** Hashes between index entry and rename; a reader must not mistake them for lost files. */
  private readonly committing = new Map<string, Promise<unknown>>();
  /** Blobs renamed into place whose fsync is pending: a second PUT of one answers no sooner. */
  private readonly syncing = new Map<string, Promise<void>>();
  private readonly sync: BlobSync;
  private readonly fs: CommitFs;
  private readonly counters = { hits: 0, misses: 0, evictions: 0, evictedBytes: 0, corruptionsDetected: 0, bytesStored: 0, bytesServed: 0 };
  readonly maxBytes: number;
  readonly lowWatermark: number;
  readonly highWatermark: number;

  private constructor(
    private readonly opts: DiskStoreOptions,
    private readonly index: DiskIndex,
  ) {
    this.maxBytes = opts.maxBytes;
    this.fs = opts.commitFs ?? realCommitFs;
    this.sync = new BlobSync({ mode: opts.fsync ?? 'before-answer', log: opts.log, fs: this.fs, alongside: () => index.sync() });
    this.highWatermark = opts.highWatermark ?? Math.floor(opts.maxBytes * 0.9);
    this.reads = new VerifiedReads(
      {
        blobPath: (hash) => this.blobPath(hash),
        corrupt: (expected, actual) => this.corrupt(expected, actual),
        missing: (hash) => this.forget(hash, 'missing'),
        verified: (hash) => this.markVerified(hash),
      },
      opts.verifyFirstMaxBytes ?? VERIFY_FIRST_MAX_BYTES,
    );
    this.lowWatermark = Math.min(opts.lowWatermark ?? Math.floor(opts.maxBytes * 0.8), this.highWatermark);
    this.space = new DiskSpace({
      index,
      maxBytes: this.maxBytes,
      lowWatermark: this.lowWatermark,
      highWatermark: this.highWatermark,
      evict: async (hash) => {
        await this.removeEntry(hash);
        await fsp.rm(this.blobPath(hash), { force: true });
      },
      evicted: (count, bytes) => {
        this.counters.evictions += count;
        this.counters.evictedBytes += bytes;
      },
      log: opts.log,
    });
  }

  /** Opens (creating if needed) the store under `options.root`. Reads the index; hashes nothing. */
  static async open(options: DiskStoreOptions): Promise<DiskStore> {
    const started = options.clock.now();
    if (!(options.maxBytes > 0)) throw new RangeError(`DiskStore maxBytes must be > 0, got ${options.maxBytes}`);
    // Leftover uploads from a crash can never be committed: their writers are gone.
    await fsp.rm(path.join(options.root, 'tmp'), { recursive: true, force: true });
    await fsp.mkdir(path.join(options.root, 'tmp'), { recursive: true });
    await createBlobDirs(path.join(options.root, 'cas'));
    const index = await DiskIndex.load(path.join(options.root, 'index.log'));
    const store = new DiskStore(options, index);
    options.log.info('cas.opened', {
      root: options.root,
      entries: index.entries.size,
      usedBytes: index.bytes,
      ms: options.clock.now() - started,
    });
    return store;
  }

  /** Fsyncs every blob still pending, persists access times and closes the index. */
  async close(): Promise<void> {
    await this.sync.flush();
    await this.index.close();
  }

  /** Writes a snapshot of the index now (e.g. from a periodic timer), keeping LRU order across restarts. */
  flush(): Promise<void> {
    return this.index.compact();
  }

  stats(): DiskStoreStats {
    return {
      entries: this.index.entries.size,
      usedBytes: this.index.bytes,
      reservedBytes: this.space.reserved,
      maxBytes: this.maxBytes,
      ...this.counters,
    };
  }

  /** Where the blob lives on disk. Unverified: for hardlinking by callers that verify themselves. */
  blobPath(hash: string): string {
    return blobFilePath(this.opts.root, hash);
  }

  /**
   * Streams `source` into the store; resolves once the blob is stored under its hash and, in
   * `before-answer` mode, fsynced (`DiskStoreOptions.fsync`).
   * @throws DigestMismatchError when the bytes do not hash to `expected.hash` or differ in size
   * @throws CasFullError when no room can be made within `maxBytes`
   */
  async put(source: Source, expected: ExpectedBlob = {}): Promise<PutResult> {
    checkExpected(expected);
    let reservation = 0;
    const tmp = this.tempPath();
    let written = false;
    try {
      if (expected.size !== undefined) reservation = await this.reserve(expected.size, expected.hash ?? '(any)');
      const { digest, fh } = await writeExpectedTemp(source, tmp, expected);
      written = true;
      const held = reservation;
      reservation = 0;
      return await this.commitTemp(tmp, digest, held, fh);
    } finally {
      this.release(reservation);
      // After a write, commitTemp owns the temp file (and removes it unless it renamed it).
      if (!written) await fsp.rm(tmp, { force: true });
    }
  }

  /** A fresh upload path under `tmp/` (emptied at every open, so a crashed writer leaves nothing). */
  tempPath(): string {
    return path.join(this.opts.root, 'tmp', `blob.${randomBytes(8).toString('hex')}`);
  }

  /**
   * Stores a file already written at `tmp` by a writer that hashed it to `actual`: the commit
   * half of {@link put}, also for cache workers that write uploads themselves. Takes over
   * `reservation` (from {@link reserve}), `fh` (the writer's open handle, if it is this
   * process's) and `tmp`; resolves when the PUT may be answered (see `fsync`).
   */
  async commitTemp(tmp: string, actual: Digest, reservation: number, fh?: FileHandle): Promise<PutResult> {
    let handle = fh;
    let renamed = false;
    try {
      if (actual.size === 0) return { digest: { ...EMPTY_DIGEST }, stored: false };
      // Concurrent uploads of one blob each hash their own temp file; only the commit is
      // serialized, so the second finds the first's file and succeeds without a second rename.
      // The sync promise is wrapped: returned bare, the lock would be held until it resolves.
      const committed = await this.withCommitLock(actual.hash, async (): Promise<{ synced: Promise<void> } | undefined> => {
        // No stat for a blob the index has never heard of: an orphan file is replaced by the rename.
        if (this.index.get(actual.hash) && (await this.has(actual))) {
          this.index.touch(actual.hash, this.opts.clock.now());
          return undefined;
        }
        if (reservation === 0) reservation = await this.reserve(actual.size, actual.hash);
        // Indexed before the rename: a crash in between leaves an index entry without a file,
        // which reads heal (has/get stat the file), rather than a file no index accounts for.
        await this.index.add(actual.hash, actual.size, this.opts.clock.now());
        this.release(reservation);
        reservation = 0;
        const final = this.blobPath(actual.hash);
        await renameIntoPlace(this.fs, tmp, final);
        renamed = true;
        const file = handle ?? final;
        handle = undefined;
        const p = this.sync.settle(file, path.dirname(final));
        this.syncing.set(actual.hash, p);
        void p.catch(() => undefined).finally(() => this.syncing.get(actual.hash) === p && this.syncing.delete(actual.hash));
        return { synced: p };
      });
      if (committed) {
        this.counters.bytesStored += actual.size;
        await this.space.evictAboveHighWatermark();
        await committed.synced;
      } else {
        await this.syncing.get(actual.hash);
      }
      return { digest: { hash: actual.hash, size: actual.size }, stored: committed !== undefined };
    } finally {
      this.release(reservation);
      if (handle) await handle.close();
      if (!renamed) await fsp.rm(tmp, { force: true });
    }
  }

  /** Convenience for small blobs already in memory. */
  putBuffer(data: Buffer, expected?: ExpectedBlob): Promise<PutResult> {
    const hash = expected?.hash ?? createHash('sha256').update(data).digest('hex');
    return this.put(Readable.from([data]), { hash, size: expected?.size ?? data.length });
  }

  /** True when the blob is present (index entry, matching size, file exists). Refreshes nothing. */
  async has(digest: Digest): Promise<boolean> {
    if (digest.size === 0 && digest.hash === EMPTY_DIGEST.hash) return true;
    const entry = this.index.get(digest.hash);
    if (!entry || entry.size !== digest.size) return false;
    return this.fileStillThere(digest.hash, entry.size);
  }

  /** The stored size of `hash`, or undefined when absent. */
  async sizeOf(hash: string): Promise<number | undefined> {
    if (hash === EMPTY_DIGEST.hash) return 0;
    const entry = this.index.get(hash);
    if (!entry || !(await this.fileStillThere(hash, entry.size))) return undefined;
    return entry.size;
  }

  /**
   * The digests of `digests` that are not present, deduplicated, in request order. Present
   * ones are marked recently used, since the caller is about to reference them.
   */
  async findMissing(digests: readonly Digest[]): Promise<Digest[]> {
    const unique = uniqueDigests(digests);
    // The stats run side by side, a bounded number at once: one after another, a result naming
    // a few outputs waits a thread-pool round trip per blob, and a huge request must not queue
    // thousands of stats ahead of every other read.
    const present = await mapBounded(unique, FIND_MISSING_CONCURRENCY, (d) => this.has(d));
    const now = this.opts.clock.now();
    const missing: Digest[] = [];
    unique.forEach((d, i) => {
      if (present[i]) this.index.touch(d.hash, now);
      else missing.push({ hash: d.hash, size: d.size });
    });
    return missing;
  }

  /**
   * Opens a blob for reading, or undefined on a miss. The stream verifies as it goes; on a
   * mismatch it errors, the file is removed and `corruptionsDetected` counts it.
   */
  async get(hash: string): Promise<BlobReader | undefined> {
    checkHash(hash);
    if (hash === EMPTY_DIGEST.hash) {
      this.counters.hits++;
      return { digest: { ...EMPTY_DIGEST }, stream: Readable.from([]) };
    }
    const entry = this.index.get(hash);
    const reader = entry && (await this.reads.open({ hash, size: entry.size }, () => entry.verified === true));
    if (!entry || !reader) {
      this.counters.misses++;
      return undefined;
    }
    this.index.touch(hash, this.opts.clock.now());
    this.counters.hits++;
    this.counters.bytesServed += entry.size;
    return reader;
  }

  /**
   * What the index knows of `hash` for a reader in another process, counted as a hit (or a
   * miss) and kept recent as {@link get} would; the reader reports back through
   * {@link markVerified}, {@link reportCorrupt} and {@link reportMissing}.
   */
  lookup(hash: string): { size: number; verified: boolean } | undefined {
    const entry = this.index.get(checkHash(hash));
    if (!entry) {
      this.counters.misses++;
      return undefined;
    }
    this.index.touch(hash, this.opts.clock.now());
    this.counters.hits++;
    this.counters.bytesServed += entry.size;
    return { size: entry.size, verified: entry.verified === true };
  }

  markVerified(hash: string): void {
    const entry = this.index.get(hash);
    if (entry) entry.verified = true;
  }

  reportCorrupt(expected: Digest, actual: Digest): Promise<void> {
    return this.corrupt(expected, actual);
  }

  reportMissing(hash: string): Promise<void> {
    return this.forget(hash, 'missing');
  }

  /** Calls `listener` with every blob that leaves the store (deleted, evicted, found corrupt or gone). */
  onRemoved(listener: (hash: string) => void): void {
    this.removedListeners.push(listener);
  }

  /** Reads a whole blob into memory (verified), or undefined on a miss or corruption. */
  async getBuffer(hash: string): Promise<Buffer | undefined> {
    const reader = await this.get(hash);
    return reader && readBlobData(reader);
  }

  /** Counts a hit served from a tier in front of this store and keeps the blob recent. */
  touch(hash: string): boolean {
    const entry = this.index.get(hash);
    if (!entry) return false;
    this.index.touch(hash, this.opts.clock.now());
    this.counters.hits++;
    this.counters.bytesServed += entry.size;
    return true;
  }

  /** Removes a blob; resolves true when it was present. The empty blob cannot be deleted. */
  async delete(hash: string): Promise<boolean> {
    checkHash(hash);
    if (hash === EMPTY_DIGEST.hash) return false;
    const had = await this.removeEntry(hash);
    await fsp.rm(this.blobPath(hash), { force: true });
    return had;
  }

  /** Evicts the least recently used blobs until `bytes` are freed (or the store is empty); returns the bytes freed. */
  trim(bytes: number): Promise<number> {
    return this.space.trim(bytes);
  }

  /** Blobs renamed into place but not yet fsynced (`background` mode: up to a window's worth). */
  get unsynced(): number {
    return this.sync.pending;
  }

  private async withCommitLock<T>(hash: string, fn: () => Promise<T>): Promise<T> {
    for (let prev = this.committing.get(hash); prev; prev = this.committing.get(hash)) {
      await prev.catch(() => undefined);
    }
    const run = fn();
    this.committing.set(hash, run);
    try {
      return await run;
    } finally {
      this.committing.delete(hash);
    }
  }

  /** Makes room for `bytes` under the hard limit and holds it until released. */
  reserve(bytes: number, hash: string): Promise<number> {
    return this.space.reserve(bytes, hash);
  }

  release(bytes: number): void {
    this.space.release(bytes);
  }

  private async fileStillThere(hash: string, size: number): Promise<boolean> {
    try {
      const st = await fsp.stat(this.blobPath(hash));
      if (st.size === size) return true;
      await this.corrupt({ hash, size }, { hash: '(not read)', size: st.size });
      return false;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await this.forget(hash, 'missing');
      return false;
    }
  }

  private async removeEntry(hash: string): Promise<boolean> {
    const had = await this.index.remove(hash);
    if (had) for (const listener of this.removedListeners) listener(hash);
    return had;
  }

  private async corrupt(expected: Digest, actual: Digest): Promise<void> {
    this.counters.corruptionsDetected++;
    this.opts.log.error('cas.corrupt-blob', { hash: expected.hash, size: expected.size, actualHash: actual.hash, actualSize: actual.size });
    await this.forget(expected.hash, 'corrupt');
  }

  private async forget(hash: string, why: 'missing' | 'corrupt'): Promise<void> {
    if (why === 'missing' && this.committing.has(hash)) return;
    if (why === 'missing') this.opts.log.warn('cas.missing-file', { hash });
    await this.removeEntry(hash);
    if (why === 'corrupt') await fsp.rm(this.blobPath(hash), { force: true });
  }
}

/** rename(2) into the blob's fan-out directory, made again if something removed it. */
async function renameIntoPlace(fs: CommitFs, tmp: string, final: string): Promise<void> {
  try {
    await fs.rename(tmp, final);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await fsp.mkdir(path.dirname(final), { recursive: true });
    await fs.rename(tmp, final);
  }
}
