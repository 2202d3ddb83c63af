import { closeSync, openSync, writeSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/** Default bytes kept in memory per stream before spilling to a temp file. */
export const DEFAULT_CAPTURE_MEMORY_BYTES = 64 * 1024 * 1024;

/**
 * Captures one output stream of a build: in memory up to `memoryLimit` bytes, then the whole
 * stream continues in a temp file under `spillDir` (so a chatty build cannot exhaust the agent's
 * memory). `write` is synchronous because `runProcess` delivers output through a sync callback.
 */
export class OutputCapture {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private fd: number | undefined;
  private spillPath: string | undefined;

  constructor(
    private readonly spillDir: string,
    private readonly label: string,
    private readonly memoryLimit = DEFAULT_CAPTURE_MEMORY_BYTES,
  ) {}

  get size(): number {
    return this.bytes;
  }

  write(chunk: string): void {
    const buf = Buffer.from(chunk, 'utf8');
    this.bytes += buf.length;
    if (this.fd === undefined && this.bytes > this.memoryLimit) {
      this.spillPath = path.join(this.spillDir, `spillway-${this.label}-${randomBytes(6).toString('hex')}`);
      this.fd = openSync(this.spillPath, 'wx', 0o600);
      for (const c of this.chunks) writeAll(this.fd, c);
      this.chunks = [];
    }
    if (this.fd !== undefined) writeAll(this.fd, buf);
    else this.chunks.push(buf);
  }

  /** The captured bytes: in memory, or the path of the spill file (closed, complete). */
  finish(): { data: Buffer } | { path: string } {
    if (this.fd !== undefined) {
      closeSync(this.fd);
      this.fd = undefined;
    }
    return this.spillPath !== undefined ? { path: this.spillPath } : { data: Buffer.concat(this.chunks) };
  }

  /** Removes the spill file, if any. Safe to call more than once. */
  async dispose(): Promise<void> {
    if (this.fd !== undefined) {
      closeSync(this.fd);
      this.fd = undefined;
    }
    if (this.spillPath !== undefined) await fsp.rm(this.spillPath, { force: true });
    this.chunks = [];
  }
}

function writeAll(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}
