import { closeSync, openSync, readSync, rmSync, writeSync } from 'node:fs';

export type LogStream = 'stdout' | 'stderr';

/** A piece of a build's output and where it starts in that output (UTF-8 bytes). */
export interface LogSegment {
  offset: number;
  stream: LogStream;
  data: string;
}

export interface LogJournalOptions {
  /** Where the journal moves once it holds more than `memoryBytes`; created then, removed by `close`. */
  file: string;
  memoryBytes: number;
  /** Output past this offset is not kept: the master would cut it anyway (builds.logMaxBytes). */
  limitBytes: () => number;
}

interface Kept extends LogSegment {
  bytes: number;
}

/**
 * One build's output from the last offset the master confirmed storing, so it can be sent
 * again to a master that died or restarted with it unstored. Kept in memory while small and
 * in a file when large: a build printing through a long outage costs the agent disk, not
 * memory. The file sits in the agent's state dir, which builds cannot reach.
 */
export class LogJournal {
  /** The offset of the next byte of output. */
  private end = 0;
  private confirmed = 0;
  /** How far output was handed to the current connection. */
  private sent = 0;
  private memory: Kept[] = [];
  private memoryBytes = 0;
  private fd: number | undefined;
  private fileSize = 0;
  /** Where in the file the first segment not yet handed out starts. */
  private readPos = 0;

  constructor(private readonly opts: LogJournalOptions) {}

  /** Output waiting to be sent on the current connection, in bytes. */
  get unsent(): number {
    return this.end - this.sent;
  }

  /** Keeps output; past the limit nothing more is kept, except the piece that crosses it (so the master marks the cut). */
  append(stream: LogStream, data: string): void {
    if (this.end > this.opts.limitBytes()) return;
    const seg: Kept = { offset: this.end, stream, data, bytes: Buffer.byteLength(data) };
    this.end += seg.bytes;
    if (this.fd === undefined && this.memoryBytes + seg.bytes > this.opts.memoryBytes) this.spill();
    if (this.fd !== undefined) return this.write([seg]);
    this.memory.push(seg);
    this.memoryBytes += seg.bytes;
  }

  /** The master stored the output up to `offset`. */
  confirm(offset: number): void {
    if (offset <= this.confirmed) return;
    this.confirmed = Math.min(offset, this.end);
    if (this.fd !== undefined) {
      if (this.confirmed >= this.end) this.unspill();
      return;
    }
    let drop = 0;
    while (drop < this.memory.length && this.memory[drop]!.offset + this.memory[drop]!.bytes <= this.confirmed) {
      this.memoryBytes -= this.memory[drop]!.bytes;
      drop++;
    }
    if (drop) this.memory = this.memory.slice(drop);
  }

  /** A new connection: everything not confirmed goes out again (the master skips what it has). */
  resend(): void {
    this.sent = this.confirmed;
    this.readPos = 0;
  }

  /** The output not yet handed to this connection, oldest first; from now on it counts as sent. */
  take(): LogSegment[] {
    const from = this.sent;
    this.sent = this.end;
    const kept = this.fd === undefined ? this.memory : this.read();
    const out: LogSegment[] = [];
    for (const s of kept) if (s.offset + s.bytes > from) out.push({ offset: s.offset, stream: s.stream, data: s.data });
    return out;
  }

  close(): void {
    this.unspill();
    this.memory = [];
    this.memoryBytes = 0;
  }

  private spill(): void {
    this.fd = openSync(this.opts.file, 'w+', 0o600);
    this.fileSize = 0;
    this.readPos = 0;
    this.write(this.memory);
    this.memory = [];
    this.memoryBytes = 0;
  }

  private unspill(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
    rmSync(this.opts.file, { force: true });
    this.fileSize = 0;
    this.readPos = 0;
  }

  private write(segs: readonly Kept[]): void {
    if (!segs.length) return;
    // One JSON array a line: JSON escapes newlines inside the data, so lines split cleanly.
    const text = segs.map((s) => JSON.stringify([s.offset, s.stream, s.data])).join('\n') + '\n';
    const buf = Buffer.from(text);
    let done = 0;
    while (done < buf.length) done += writeSync(this.fd!, buf, done, buf.length - done, this.fileSize + done);
    this.fileSize += buf.length;
  }

  private read(): Kept[] {
    const len = this.fileSize - this.readPos;
    if (len <= 0) return [];
    const buf = Buffer.alloc(len);
    let done = 0;
    while (done < len) done += readSync(this.fd!, buf, done, len - done, this.readPos + done);
    this.readPos = this.fileSize;
    const out: Kept[] = [];
    for (const line of buf.toString('utf8').split('\n')) {
      if (!line) continue;
      const [offset, stream, data] = JSON.parse(line) as [number, LogStream, string];
      out.push({ offset, stream, data, bytes: Buffer.byteLength(data) });
    }
    return out;
  }
}
