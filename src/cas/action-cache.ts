import { randomBytes } from 'node:crypto';
import { promises as fsp, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { writeSyncedFile } from './synced-file';
import { isDigest, isHash, type Digest } from './digest';
import { parseActionResultBytes, referencedDigests, serializeActionResult, type ActionResult } from './action-result';
import { BadDigestError } from './errors';
import type { BlobReader, BlobStore } from './blob-store';

/** Pointers {@link ActionCache.peekRaw} remembers at most (about 200 bytes each); past it, it starts again. */
const MAX_REMEMBERED_POINTERS = 65_536;

/** Options of {@link ActionCache.open}. */
export interface ActionCacheOptions {
  /** Same root as the disk store: results under `ac/`, raw values under `ac-raw/`, temps in `tmp/`. */
  root: string;
  store: BlobStore;
  /** Where entries are also kept beyond this disk (the S3 tier). @defaultValue none */
  mirror?: ActionEntryMirror;
}

/** The two kinds of entry: results under `ac/`, raw values' pointers under `ac-raw/`. */
export type ActionEntryNamespace = 'ac' | 'ac-raw';

/**
 * A second home for action-cache entries, written through and read back on a local miss. The
 * bytes it returns are untrusted: the cache validates them before storing or serving them and
 * reports what it refused.
 */
export interface ActionEntryMirror {
  /** `bytes` were durably written locally under `namespace/key`: copy them out (may be queued). */
  written(namespace: ActionEntryNamespace, key: string, bytes: Buffer): Promise<void>;
  fetch(namespace: ActionEntryNamespace, key: string): Promise<Buffer | undefined>;
  /** What {@link fetch} returned is not a valid entry; it was neither stored nor served. */
  rejected(namespace: ActionEntryNamespace, key: string, reason: string): void;
}

/** Options of {@link ActionCache.get}. */
export interface ActionCacheGetOptions {
  /** Serve a result only when every blob it references is in the store. @defaultValue true */
  requireComplete?: boolean;
}

/** Options of {@link ActionCache.put}. */
export interface ActionCachePutOptions {
  /** Store a result whose exit code is not 0 (or that has an outcome). @defaultValue false */
  allowFailed?: boolean;
}

/**
 * Action digest -> {@link ActionResult}, one small JSON file per action under `root/ac/`, plus
 * a raw namespace for opaque values clients store under `/ac/` (Bazel's protobuf results,
 * ccache's `layout=bazel` entries).
 *
 * Raw values are kept as CAS blobs with a pointer file under `root/ac-raw/`, so they share the
 * store's size bound, LRU eviction and corruption checks; a pointer whose blob was evicted is a
 * miss.
 */
export class ActionCache {
  /** Lookups of action results (not the raw namespace): served, or missing/incomplete. */
  private readonly counters = { hits: 0, misses: 0 };
  /** Raw pointers {@link peekRaw} has read, with the file identity they were read from. */
  private readonly pointers = new Map<string, { ino: number; ctimeMs: number; bytes: number; digest: Digest }>();

  private constructor(private readonly opts: ActionCacheOptions) {}

  stats(): { hits: number; misses: number } {
    return { ...this.counters };
  }

  static async open(options: ActionCacheOptions): Promise<ActionCache> {
    for (const dir of ['ac', 'ac-raw', 'tmp']) await fsp.mkdir(path.join(options.root, dir), { recursive: true });
    return new ActionCache(options);
  }

  /** The result for `actionHash`, or undefined on a miss or (by default) when incomplete. */
  async get(actionHash: string, options: ActionCacheGetOptions = {}): Promise<ActionResult | undefined> {
    const result = await this.lookup(actionHash, options);
    if (result) this.counters.hits++;
    else this.counters.misses++;
    return result;
  }

  private async lookup(actionHash: string, options: ActionCacheGetOptions): Promise<ActionResult | undefined> {
    const bytes = (await readOptional(this.resultPath(check(actionHash)))) ?? (await this.fetchResult(actionHash));
    if (!bytes) return undefined;
    const result = parseActionResultBytes(bytes);
    if (!result) return undefined;
    if (options.requireComplete ?? true) {
      // findMissing also refreshes the blobs' LRU position: a result being served keeps its outputs.
      const missing = await this.opts.store.findMissing(referencedDigests(result));
      if (missing.length > 0) return undefined;
    }
    return result;
  }

  /**
   * Stores `result` under `actionHash`. Resolves false (and stores nothing) for a failed action
   * unless `allowFailed`, since a failure may be flaky and must not be replayed forever.
   */
  async put(actionHash: string, result: ActionResult, options: ActionCachePutOptions = {}): Promise<boolean> {
    check(actionHash);
    const failed = result.exitCode !== 0 || result.outcome !== undefined;
    if (failed && !options.allowFailed) return false;
    const bytes = serializeActionResult(result);
    if (!parseActionResultBytes(bytes)) throw new BadDigestError('not a valid action result');
    await this.writeAtomically(this.resultPath(actionHash), bytes);
    await this.opts.mirror?.written('ac', actionHash, bytes);
    return true;
  }

  /** Removes both the result and any raw value under `actionHash`. */
  async delete(actionHash: string): Promise<boolean> {
    check(actionHash);
    const a = await removeOptional(this.resultPath(actionHash));
    const b = await removeOptional(this.rawPath(actionHash));
    return a || b;
  }

  /** Stores an opaque value under `key` (bytes go to the CAS), replacing any result there. */
  async putRaw(key: string, source: AsyncIterable<Buffer | Uint8Array>, size?: number): Promise<Digest> {
    check(key);
    const { digest } = await this.opts.store.put(source, size === undefined ? {} : { size });
    const pointer = Buffer.from(JSON.stringify(digest));
    await this.writeAtomically(this.rawPath(key), pointer);
    // Results are looked up first, so an older result under this key would shadow the new value.
    await removeOptional(this.resultPath(key));
    await this.opts.mirror?.written('ac-raw', key, pointer);
    return digest;
  }

  /** Opens the opaque value under `key`, or undefined (also when its blob was evicted). */
  async getRaw(key: string): Promise<BlobReader | undefined> {
    const local = await readOptional(this.rawPath(check(key)));
    const bytes = local ?? (await this.opts.mirror?.fetch('ac-raw', key));
    if (!bytes) return undefined;
    const digest = parsePointer(bytes);
    if (!digest) {
      if (!local) this.opts.mirror?.rejected('ac-raw', key, 'not a digest');
      return undefined;
    }
    if (!local) await this.writeAtomically(this.rawPath(key), bytes);
    const reader = await this.opts.store.get(digest.hash);
    if (!reader || reader.digest.size !== digest.size) {
      reader?.stream.destroy();
      return undefined;
    }
    return reader;
  }

  /**
   * The digest of the opaque value under `key` when {@link getRaw} would serve it now, told
   * synchronously for the raw hit path: no result file shadows it and the pointer file is the
   * one read before (same inode, change time and size; every write renames a new file into
   * place), at the cost of two `stat`s; a pointer seen for the first time is read once. Undefined
   * whenever that is not certain (a mirror, which may hold a result this disk lacks; a missing or
   * bad pointer), and the caller then asks the routes.
   */
  peekRaw(key: string): Digest | undefined {
    if (this.opts.mirror || !isHash(key)) return undefined;
    if (statSync(this.resultPath(key), { throwIfNoEntry: false }) !== undefined) return undefined;
    const file = this.rawPath(key);
    const st = statSync(file, { throwIfNoEntry: false });
    if (st === undefined) {
      this.pointers.delete(key);
      return undefined;
    }
    const seen = this.pointers.get(key);
    if (seen && seen.ino === st.ino && seen.ctimeMs === st.ctimeMs && seen.bytes === st.size) return seen.digest;
    let digest: Digest | undefined;
    try {
      digest = parsePointer(readFileSync(file));
    } catch {
      digest = undefined;
    }
    if (!digest) return undefined;
    if (this.pointers.size >= MAX_REMEMBERED_POINTERS) this.pointers.clear();
    this.pointers.set(key, { ino: st.ino, ctimeMs: st.ctimeMs, bytes: st.size, digest });
    return digest;
  }

  /** A result the mirror holds, validated and stored locally (without queueing it back out). */
  private async fetchResult(actionHash: string): Promise<Buffer | undefined> {
    const bytes = await this.opts.mirror?.fetch('ac', actionHash);
    if (!bytes) return undefined;
    if (!parseActionResultBytes(bytes)) {
      this.opts.mirror?.rejected('ac', actionHash, 'not a valid action result');
      return undefined;
    }
    await this.writeAtomically(this.resultPath(actionHash), bytes);
    return bytes;
  }

  private resultPath(hash: string): string {
    return path.join(this.opts.root, 'ac', hash.slice(0, 2), hash);
  }

  private rawPath(hash: string): string {
    return path.join(this.opts.root, 'ac-raw', hash.slice(0, 2), hash);
  }

  // Readers never see a half-written entry, and a crash leaves the old entry or the new one.
  private async writeAtomically(file: string, bytes: Buffer): Promise<void> {
    const tmp = path.join(this.opts.root, 'tmp', `ac.${randomBytes(8).toString('hex')}`);
    await writeSyncedFile(tmp, bytes);
    try {
      await fsp.mkdir(path.dirname(file), { recursive: true });
      await fsp.rename(tmp, file);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    }
  }
}

function check(hash: string): string {
  if (!isHash(hash)) throw new BadDigestError(`bad action key (want 64 lower-case hex): ${String(hash).slice(0, 80)}`);
  return hash;
}

function parsePointer(bytes: Buffer): Digest | undefined {
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    return isDigest(value) ? { hash: value.hash, size: value.size } : undefined;
  } catch {
    return undefined;
  }
}

async function readOptional(file: string): Promise<Buffer | undefined> {
  try {
    return await fsp.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function removeOptional(file: string): Promise<boolean> {
  try {
    await fsp.rm(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
