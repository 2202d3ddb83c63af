import type { FileHandle } from 'node:fs/promises';

/** Bytes gathered before one write: HTTP hands over 16-64 KiB chunks, a write each is slow. */
const BATCH_BYTES = 1024 * 1024;

/** Appends to a file in ~1 MiB writes instead of one write per incoming chunk. */
export class BatchedWriter {
  private parts: Buffer[] = [];
  private pending = 0;

  constructor(private readonly fh: FileHandle) {}

  async write(buf: Buffer): Promise<void> {
    this.parts.push(buf);
    this.pending += buf.length;
    if (this.pending >= BATCH_BYTES) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.pending === 0) return;
    const data = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.pending);
    this.parts = [];
    this.pending = 0;
    await this.fh.write(data);
  }
}
