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
  private written = 0;
  private dropped = 0;
  private broken = false;

  constructor(
    private readonly spillDir: string,
    private readonly label: string,
    private readonly memoryLimit = DEFAULT_CAPTURE_MEMORY_BYTES,
  ) {}

  get size(): number {
    return this.bytes;
  }

  /** Bytes lost because the spill file could not take them (a full disk); they are counted in `size`. */
  get droppedBytes(): number {
    return this.dropped;
  }

  /**
   * Never throws: it runs inside the runner's output callback, where an exception would take
   * the agent down. A spill file that cannot be created or written (ENOSPC from a build that
   * filled the disk) ends the capture; what came before is kept, the rest counted as dropped.
   */
  write(chunk: string): void {
    const buf = Buffer.from(chunk, 'utf8');
    this.bytes += buf.length;
    if (this.broken) {
      this.dropped += buf.length;
      return;
    }
    try {
      if (this.fd === undefined && this.bytes > this.memoryLimit) {
        const spillPath = path.join(this.spillDir, `spillway-${this.label}-${randomBytes(6).toString('hex')}`);
        this.fd = openSync(spillPath, 'wx', 0o600);
        this.spillPath = spillPath;
        for (const c of this.chunks) this.written += writeAll(this.fd, c);
        this.chunks = [];
      }
      if (this.fd !== undefined) this.written += writeAll(this.fd, buf);
      else this.chunks.push(buf);
    } catch (err) {
      this.broken = true;
      if (this.fd !== undefined) {
        this.written += (err as { written?: number }).written ?? 0;
        this.chunks = [];
      }
      const kept = this.fd !== undefined ? this.written : this.chunks.reduce((n, c) => n + c.length, 0);
      this.dropped = this.bytes - kept;
    }
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

/** Writes all of `buf`; on a failure part-way, `written` of the error says how much got out. */
function writeAll(fd: number, buf: Buffer): number {
  let off = 0;
  try {
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
  } catch (err) {
    throw Object.assign(err as Error, { written: off });
  }
  return off;
}
