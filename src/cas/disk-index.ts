import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { writeSyncedFile } from './synced-file';
import { isHash } from './digest';

/** One stored blob as the index knows it. */
export interface IndexEntry {
  size: number;
  lastAccess: number;
  /** The file hashed to its name since this process started (memory only, never persisted). */
  verified?: boolean;
}

/**
 * The disk store's persisted index: which blobs exist, their sizes and when they were last
 * used, so that `open()` reads one file instead of listing and re-hashing the whole store
 * (blobs are verified when read instead).
 *
 * On disk it is an append-only log (`+ hash size lastAccess`, `- hash`) that is rewritten as a
 * compact snapshot on open, on `compact()` and when the log has grown well past the number of
 * live entries. Access-time refreshes are kept in memory and only reach disk with a snapshot:
 * writing a line per cache hit would double the I/O of the hot path, and losing some recency
 * after a crash only makes eviction slightly less precise.
 *
 * The in-memory `Map` is kept in least-recently-used-first order (a touch re-inserts), so
 * eviction walks it from the front.
 */
export class DiskIndex {
  readonly entries = new Map<string, IndexEntry>();
  private totalBytes = 0;
  private handle: fsp.FileHandle | undefined;
  private appended = 0;
  private closed = false;
  // Appends and snapshots must not interleave, or a snapshot could drop a concurrent append.
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(private readonly file: string) {}

  /** Loads (tolerating a torn last line from a crash) and compacts the index at `file`. */
  static async load(file: string): Promise<DiskIndex> {
    const index = new DiskIndex(file);
    let text = '';
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const loaded = new Map<string, IndexEntry>();
    for (const line of text.split('\n')) {
      const [op, hash, size, at] = line.split(' ');
      if (!isHash(hash)) continue;
      if (op === '+' && /^\d+$/.test(size ?? '') && /^\d+$/.test(at ?? '')) {
        loaded.delete(hash);
        loaded.set(hash, { size: Number(size), lastAccess: Number(at) });
      } else if (op === '-') {
        loaded.delete(hash);
      }
    }
    // Snapshots are written in LRU order, but appended lines may carry older access times.
    const sorted = [...loaded.entries()].sort((a, b) => a[1].lastAccess - b[1].lastAccess);
    for (const [hash, entry] of sorted) index.setEntry(hash, entry);
    await index.compact();
    return index;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  get(hash: string): IndexEntry | undefined {
    return this.entries.get(hash);
  }

  /** Records a new blob (persisted before the blob is renamed into place, see DiskStore.put). */
  async add(hash: string, size: number, now: number): Promise<void> {
    this.setEntry(hash, { size, lastAccess: now });
    await this.append(`+ ${hash} ${size} ${now}\n`);
  }

  async remove(hash: string): Promise<boolean> {
    const entry = this.entries.get(hash);
    if (!entry) return false;
    this.entries.delete(hash);
    this.totalBytes -= entry.size;
    await this.append(`- ${hash}\n`);
    return true;
  }

  /** Marks `hash` most recently used (memory only; persisted by the next snapshot). */
  touch(hash: string, now: number): void {
    const entry = this.entries.get(hash);
    if (!entry) return;
    this.entries.delete(hash);
    entry.lastAccess = now;
    this.entries.set(hash, entry);
  }

  /** Rewrites the log as a snapshot of the live entries (temp file, fsync, atomic rename). */
  compact(): Promise<void> {
    return this.serialize(async () => {
      if (this.closed) return;
      await this.handle?.close();
      this.handle = undefined;
      const tmp = `${this.file}.tmp`;
      const lines: string[] = [];
      for (const [hash, e] of this.entries) lines.push(`+ ${hash} ${e.size} ${e.lastAccess}\n`);
      await writeSyncedFile(tmp, lines.join(''), 'w');
      await fsp.rename(tmp, this.file);
      this.handle = await fsp.open(this.file, 'a');
      this.appended = 0;
    });
  }

  /**
   * fdatasync of the log, so that every line appended so far survives a power loss. Not queued
   * behind appends (a commit must not wait for another group's sync to write its line).
   */
  async sync(): Promise<void> {
    const handle = this.handle;
    try {
      await handle?.datasync();
    } catch (err) {
      // A snapshot replaced the log meanwhile; it was fsynced with every line in it.
      if (this.handle === handle) throw err;
    }
  }

  async close(): Promise<void> {
    await this.compact();
    await this.serialize(async () => {
      this.closed = true;
      await this.handle?.close();
      this.handle = undefined;
    });
  }

  private setEntry(hash: string, entry: IndexEntry): void {
    const old = this.entries.get(hash);
    if (old) this.totalBytes -= old.size;
    this.entries.delete(hash);
    this.entries.set(hash, entry);
    this.totalBytes += entry.size;
  }

  private async append(line: string): Promise<void> {
    await this.serialize(async () => {
      if (!this.handle) throw new Error(`cas index ${path.basename(this.file)} is closed`);
      await this.handle.write(line);
      this.appended++;
    });
    if (this.appended > Math.max(10_000, 2 * this.entries.size)) await this.compact();
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }
}
