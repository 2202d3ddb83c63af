import { join } from 'node:path';
import type { Clock } from '../lib';
import type { AgentFrame } from '../protocol';
import { LogJournal, type LogStream } from './log-journal';

export type LogFrame = Extract<AgentFrame, { type: 'log' }>;

export interface LogOutboxOptions {
  clock: Clock;
  /** Whether frames can go out now (connected, welcomed, socket not backed up). */
  canSend: () => boolean;
  send: (frame: LogFrame) => void;
  /** The agent's own directory, out of builds' reach, where large unconfirmed output goes. */
  spillDir: () => string;
  /** A build's output past this is not kept: the master keeps no more (its builds.logMaxBytes). */
  limitBytes: () => number;
  /** @defaultValue 50 */
  flushMs?: number;
  /** A build's output is sent at once when this much is waiting; also the largest frame. @defaultValue 32768 */
  flushChars?: number;
  /** A build's unconfirmed output held in memory; more moves to a file. @defaultValue 262144 */
  memoryBytes?: number;
}

interface Pending {
  queue: string;
  jobId: string;
  journal: LogJournal;
}

/**
 * Build output on its way to the master: coalesced into few frames, each numbered with its
 * offset in the build's output, and kept until the master confirms storing it — across
 * disconnects and master restarts, in memory while small and on disk when large. The build
 * itself never waits for the master.
 */
export class LogOutbox {
  private readonly pending = new Map<string, Pending>();
  private timer: AbortController | undefined;
  private readonly flushMs: number;
  private readonly flushChars: number;
  private readonly memoryBytes: number;
  private files = 0;

  constructor(private readonly opts: LogOutboxOptions) {
    this.flushMs = opts.flushMs ?? 50;
    this.flushChars = opts.flushChars ?? 32 * 1024;
    this.memoryBytes = opts.memoryBytes ?? 256 * 1024;
  }

  push(queue: string, jobId: string, stream: LogStream, data: string): void {
    const key = keyOf(queue, jobId);
    let p = this.pending.get(key);
    if (!p) {
      const file = join(this.opts.spillDir(), `log-${++this.files}.jsonl`);
      p = { queue, jobId, journal: new LogJournal({ file, memoryBytes: this.memoryBytes, limitBytes: this.opts.limitBytes }) };
      this.pending.set(key, p);
    }
    p.journal.append(stream, data);
    if (p.journal.unsent >= this.flushChars) this.flushOne(key);
    else this.schedule();
  }

  /** Sends whatever is waiting for one build (before its `finished`), or for all builds. */
  flush(queue?: string, jobId?: string): void {
    if (queue !== undefined && jobId !== undefined) return this.flushOne(keyOf(queue, jobId));
    for (const key of [...this.pending.keys()]) this.flushOne(key);
  }

  /** The master stored a build's output up to `offset`. */
  confirm(queue: string, jobId: string, offset: number): void {
    this.pending.get(keyOf(queue, jobId))?.journal.confirm(offset);
  }

  /** On a new connection: a build's unconfirmed output is sent again. */
  resend(queue: string, jobId: string): void {
    this.pending.get(keyOf(queue, jobId))?.journal.resend();
  }

  /** Drops a build's output (it was acknowledged, cancelled or taken away). */
  forget(queue: string, jobId: string): void {
    const key = keyOf(queue, jobId);
    this.pending.get(key)?.journal.close();
    this.pending.delete(key);
  }

  close(): void {
    this.timer?.abort();
    this.timer = undefined;
    for (const p of this.pending.values()) p.journal.close();
    this.pending.clear();
  }

  private flushOne(key: string): void {
    const p = this.pending.get(key);
    if (!p || p.journal.unsent === 0 || !this.opts.canSend()) return;
    let frame: LogFrame | undefined;
    for (const s of p.journal.take()) {
      if (frame && frame.stream === s.stream && frame.data.length + s.data.length <= this.flushChars) {
        frame.data += s.data;
        continue;
      }
      if (frame) this.opts.send(frame);
      frame = { type: 'log', queue: p.queue, jobId: p.jobId, stream: s.stream, data: s.data, offset: s.offset };
    }
    if (frame) this.opts.send(frame);
  }

  private schedule(): void {
    if (this.timer) return;
    const timer = new AbortController();
    this.timer = timer;
    this.opts.clock.sleep(this.flushMs, timer.signal).then(
      () => {
        if (this.timer === timer) this.timer = undefined;
        this.flush();
        if (this.opts.canSend() && [...this.pending.values()].some((p) => p.journal.unsent > 0)) this.schedule();
      },
      () => undefined,
    );
  }
}

export function keyOf(queue: string, jobId: string): string {
  return `${queue}\u0000${jobId}`;
}
