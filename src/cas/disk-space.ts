import type { Logger } from '../lib';
import type { DiskIndex } from './disk-index';
import { CasFullError } from './errors';

/** What {@link DiskSpace} needs of its store. */
export interface DiskSpaceOptions {
  index: DiskIndex;
  maxBytes: number;
  lowWatermark: number;
  highWatermark: number;
  /** Removes one blob (its index entry and its file). */
  evict(hash: string): Promise<void>;
  /** Counts what eviction removed. */
  evicted(count: number, bytes: number): void;
  log: Logger;
}

/**
 * The disk store's size account: room held for uploads in flight, the hard limit, and LRU
 * eviction between the watermarks (oldest first, the index's own order).
 */
export class DiskSpace {
  private held = 0;

  constructor(private readonly opts: DiskSpaceOptions) {}

  get reserved(): number {
    return this.held;
  }

  /** Makes room for `bytes` under the hard limit and holds it until released. */
  async reserve(bytes: number, hash: string): Promise<number> {
    if (bytes === 0) return 0;
    const { index, maxBytes } = this.opts;
    const fits = () => index.bytes + this.held + bytes <= maxBytes;
    if (!fits()) await this.evictWhile(() => !fits());
    if (!fits()) {
      this.opts.log.warn('cas.full', { hash, bytes, usedBytes: index.bytes, reservedBytes: this.held, maxBytes });
      throw new CasFullError(`no room for ${bytes} bytes: ${index.bytes} stored + ${this.held} in flight, limit ${maxBytes}`);
    }
    this.held += bytes;
    return bytes;
  }

  release(bytes: number): void {
    this.held -= bytes;
  }

  /** Evicts the least recently used blobs until `bytes` are freed (or none are left); returns the bytes freed. */
  async trim(bytes: number): Promise<number> {
    const before = this.opts.index.bytes;
    await this.evictWhile(() => before - this.opts.index.bytes < bytes);
    return before - this.opts.index.bytes;
  }

  async evictAboveHighWatermark(): Promise<void> {
    const { index } = this.opts;
    if (index.bytes + this.held <= this.opts.highWatermark) return;
    await this.evictWhile(() => index.bytes + this.held > this.opts.lowWatermark);
  }

  private async evictWhile(needMore: () => boolean): Promise<void> {
    let count = 0;
    let bytes = 0;
    while (needMore()) {
      const oldest = this.opts.index.entries.entries().next();
      if (oldest.done) break;
      const [hash, entry] = oldest.value;
      await this.opts.evict(hash);
      count++;
      bytes += entry.size;
    }
    if (count === 0) return;
    this.opts.evicted(count, bytes);
    this.opts.log.info('cas.evicted', { count, bytes, usedBytes: this.opts.index.bytes });
  }
}
