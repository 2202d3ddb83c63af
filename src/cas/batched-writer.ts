import type { FileHandle } from 'node:fs/promises';

/** Bytes gathered before one write: HTTP hands over 16-64 KiB chunks, a write each is slow. */
const BATCH_BYTES = 1024 * 1024;

/**
 * Appends to a file in ~1 MiB writes instead of one write per incoming chunk, with one write in
 * flight while the next batch gathers: the caller keeps reading its socket (and hashing) while
 * the disk works, instead of taking turns with it.
 */
export class BatchedWriter {
  private parts: Buffer[] = [];
  private pending = 0;
  private inFlight: Promise<unknown> | undefined;

  constructor(private readonly fh: FileHandle) {}

  async write(buf: Buffer): Promise<void> {
    this.parts.push(buf);
    this.pending += buf.length;
    if (this.pending < BATCH_BYTES) return;
    // Backpressure: at most one batch written while one more gathers.
    if (this.inFlight) await this.inFlight;
    this.inFlight = this.startWrite();
  }

  /** Writes everything gathered and waits for all writes to finish; rethrows a failed write. */
  async flush(): Promise<void> {
    if (this.inFlight) await this.inFlight;
    this.inFlight = undefined;
    if (this.pending > 0) await this.startWrite();
  }

  private startWrite(): Promise<unknown> {
    // writev, not concat: a copy of every byte less, and no 1 MiB garbage per batch.
    const parts = this.parts;
    this.parts = [];
    this.pending = 0;
    const p = parts.length === 1 ? this.fh.write(parts[0]!) : this.fh.writev(parts);
    // A failure surfaces at the next write() or flush(); never as an unhandled rejection.
    p.catch(() => undefined);
    return p;
  }
}
