import type { FileHandle } from 'node:fs/promises';

/** Bytes gathered before one write: HTTP hands over 16-64 KiB chunks, a write each is slow. */
const BATCH_BYTES = 256 * 1024;
/**
 * Writes in flight at once (positional, so they may complete in any order): enough that the
 * socket never waits for the disk, few enough that a slow disk pushes back on the upload
 * instead of piling its body up in memory (at most this many batches plus one gathering).
 */
const MAX_IN_FLIGHT = 4;
/** Written bytes after which the disk is asked to start flushing them, while more arrive. */
const SYNC_EVERY_BYTES = 8 * 1024 * 1024;

/**
 * Appends to a file in batched positional writes instead of one write per incoming chunk, with
 * a few in flight while the next batch gathers: the caller keeps reading its socket (and
 * hashing) while the disk works, instead of taking turns with it. Large files are also flushed
 * to disk as they grow (fdatasync in the background every few MiB), so the caller's final
 * fsync waits for the tail only rather than for the whole file after the last byte arrived.
 */
export class BatchedWriter {
  private parts: Buffer[] = [];
  private pending = 0;
  private position = 0;
  private readonly inFlight = new Set<Promise<unknown>>();
  private failure: unknown;
  private syncing: Promise<unknown> | undefined;
  private unsynced = 0;

  constructor(private readonly fh: FileHandle) {}

  async write(buf: Buffer): Promise<void> {
    this.parts.push(buf);
    this.pending += buf.length;
    if (this.pending < BATCH_BYTES) return;
    // Backpressure: wait for one write to finish only when the window is full.
    while (this.inFlight.size >= MAX_IN_FLIGHT) await Promise.race(this.inFlight);
    this.throwIfFailed();
    this.startWrite();
  }

  /** Writes everything gathered and waits for all writes and flushes; rethrows a failure. */
  async flush(): Promise<void> {
    if (this.pending > 0) this.startWrite();
    await Promise.all(this.inFlight);
    if (this.syncing) await this.syncing;
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private startWrite(): void {
    // writev, not concat: a copy of every byte less, and no garbage per batch.
    const parts = this.parts;
    const bytes = this.pending;
    const at = this.position;
    this.parts = [];
    this.pending = 0;
    this.position += bytes;
    const p: Promise<unknown> = (parts.length === 1 ? this.fh.write(parts[0]!, 0, bytes, at) : this.fh.writev(parts, at)).then(
      () => this.written(bytes),
      // A failure surfaces at the next write() or flush(); never as an unhandled rejection.
      (err: unknown) => {
        this.failure ??= err;
      },
    );
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  private written(bytes: number): void {
    this.unsynced += bytes;
    if (this.unsynced < SYNC_EVERY_BYTES || this.syncing) return;
    this.unsynced = 0;
    const s = this.fh.datasync().finally(() => {
      if (this.syncing === s) this.syncing = undefined;
    });
    s.catch(() => undefined);
    this.syncing = s;
  }
}
