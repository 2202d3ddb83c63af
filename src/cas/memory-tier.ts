import { Readable } from 'node:stream';
import type { Logger } from '../lib';
import { readBlobData, type BlobReader, type BlobStore, type ExpectedBlob, type PutResult, type Source } from './blob-store';
import { digestOf, type Digest } from './digest';

/** Options of {@link MemoryTier}. */
export interface MemoryTierOptions {
  /** The store this tier sits in front of; it stays the authority on what exists. */
  inner: BlobStore;
  /** Bytes of blob data held in memory at most (0 disables the tier). */
  maxBytes: number;
  /** Largest blob held; bigger ones stream from `inner` every time. @defaultValue 1 MiB */
  maxBlobBytes?: number;
  log: Logger;
}

/** Counters for metrics and tests. */
export interface MemoryTierStats {
  entries: number;
  bytes: number;
  maxBytes: number;
  hits: number;
  misses: number;
  /** Blobs that failed the hash check on their way into memory (removed from `inner`). */
  corruptionsDetected: number;
}

const DEFAULT_MAX_BLOB_BYTES = 1024 * 1024;
/** Written blobs up to this size are kept on the way in: hashing them again costs little. */
const FILL_ON_PUT_BYTES = 64 * 1024;

/**
 * A bounded set of hot small blobs served from memory, in front of another store: a hit costs no
 * file open, stat, read or hash. A blob is hashed when it enters memory, so what this tier
 * serves is always verified; one that fails is removed from `inner` and never served.
 *
 * Reads that miss here fill the tier, and so do small writes once `inner` has committed them;
 * existence checks and find-missing go to `inner` unchanged, so the disk decides what is present. A hit is passed on as a `touch`, keeping the
 * blob recent in the inner store's eviction order; a blob the inner store no longer holds is
 * dropped here too, so GET never answers for a blob HEAD calls absent.
 */
export class MemoryTier implements BlobStore {
  /** Least recently used first (a hit re-inserts), so eviction walks from the front. */
  private readonly blobs = new Map<string, Buffer>();
  private bytes = 0;
  private readonly maxBlobBytes: number;
  private readonly fillOnPutBytes: number;
  private readonly counters = { hits: 0, misses: 0, corruptionsDetected: 0 };

  constructor(private readonly opts: MemoryTierOptions) {
    this.maxBlobBytes = Math.min(opts.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES, opts.maxBytes);
    this.fillOnPutBytes = Math.min(FILL_ON_PUT_BYTES, this.maxBlobBytes);
  }

  stats(): MemoryTierStats {
    return { entries: this.blobs.size, bytes: this.bytes, maxBytes: this.opts.maxBytes, ...this.counters };
  }

  /**
   * The verified bytes of `hash` when this tier holds them, counted as a hit; undefined
   * otherwise (not counted: the caller goes on to {@link get}, which counts the miss).
   * Synchronous, so an HTTP server can answer a hot hit without a promise or a stream.
   */
  peek(hash: string): Buffer | undefined {
    const held = this.blobs.get(hash);
    if (!held) return undefined;
    // Only while the disk still holds it: a blob it evicted is absent for HEAD and find-missing,
    // so serving it from here would say "present" to GET alone.
    if (!this.opts.inner.touch(hash)) {
      this.drop(hash);
      return undefined;
    }
    this.blobs.delete(hash);
    this.blobs.set(hash, held);
    this.counters.hits++;
    return held;
  }

  async get(hash: string): Promise<BlobReader | undefined> {
    const held = this.peek(hash);
    if (held) return inMemory(hash, held);
    this.counters.misses++;
    const reader = await this.opts.inner.get(hash);
    if (!reader || reader.digest.size > this.maxBlobBytes) return reader;
    const data = await readBlobData(reader);
    if (!data) return undefined;
    const actual = digestOf(data);
    if (actual.hash !== hash || actual.size !== reader.digest.size) {
      this.counters.corruptionsDetected++;
      this.opts.log.error('cas.corrupt-blob', { hash, size: reader.digest.size, actualHash: actual.hash, actualSize: actual.size, tier: 'memory' });
      await this.opts.inner.delete(hash);
      return undefined;
    }
    this.insert(hash, data);
    return inMemory(hash, data);
  }

  /**
   * Stores through `inner`, and keeps a small blob's bytes here once `inner` has it: what is
   * written is mostly read soon after (a remote action's Action and Command, an agent's
   * outputs, which the client downloads).
   * The bytes are hashed again before they enter, as on a read, so this tier never holds
   * anything but the blob `inner` committed.
   */
  async put(source: Source, expected?: ExpectedBlob): Promise<PutResult> {
    if (expected?.size !== undefined && expected.size > this.fillOnPutBytes) return this.opts.inner.put(source, expected);
    const chunks: Buffer[] = [];
    let seen = 0;
    const limit = this.fillOnPutBytes;
    async function* copying(): AsyncGenerator<Buffer | Uint8Array> {
      for await (const chunk of source as AsyncIterable<Buffer | Uint8Array>) {
        seen += chunk.length;
        if (seen <= limit) chunks.push(Buffer.from(chunk));
        else chunks.length = 0;
        yield chunk;
      }
    }
    const result = await this.opts.inner.put(copying(), expected);
    if (seen <= limit && seen > 0 && !this.blobs.has(result.digest.hash)) {
      const data = Buffer.concat(chunks);
      const actual = digestOf(data);
      // `inner` has just committed it (or held it already); a touch here would count a hit no one asked for.
      if (actual.hash === result.digest.hash && actual.size === result.digest.size) this.insert(actual.hash, data);
    }
    return result;
  }

  has(digest: Digest): Promise<boolean> {
    return this.opts.inner.has(digest);
  }

  sizeOf(hash: string): Promise<number | undefined> {
    return this.opts.inner.sizeOf(hash);
  }

  findMissing(digests: readonly Digest[]): Promise<Digest[]> {
    return this.opts.inner.findMissing(digests);
  }

  async delete(hash: string): Promise<boolean> {
    this.drop(hash);
    return this.opts.inner.delete(hash);
  }

  touch(hash: string): boolean {
    return this.opts.inner.touch(hash);
  }

  private insert(hash: string, data: Buffer): void {
    if (this.blobs.has(hash)) return;
    this.blobs.set(hash, data);
    this.bytes += data.length;
    for (const [oldest, buf] of this.blobs) {
      if (this.bytes <= this.opts.maxBytes) break;
      this.blobs.delete(oldest);
      this.bytes -= buf.length;
    }
  }

  private drop(hash: string): void {
    const buf = this.blobs.get(hash);
    if (!buf) return;
    this.blobs.delete(hash);
    this.bytes -= buf.length;
  }
}

// The stream is made only if a caller asks for it: the HTTP routes send `data` directly.
function inMemory(hash: string, data: Buffer): BlobReader {
  return {
    digest: { hash, size: data.length },
    data,
    get stream() {
      return Readable.from([data]);
    },
  };
}
