import type { Clock } from '../lib';
import type { AgentFrame } from '../protocol';

export type LogFrame = Extract<AgentFrame, { type: 'log' }>;
type Stream = LogFrame['stream'];

export interface LogOutboxOptions {
  clock: Clock;
  /** Whether frames can go out now (connected, welcomed, socket not backed up). */
  canSend: () => boolean;
  send: (frame: LogFrame) => void;
  /** Called once per gap when output had to be dropped. */
  onDrop?: (queue: string, jobId: string, chars: number) => void;
  /** @defaultValue 50 */
  flushMs?: number;
  /** A build's output is sent at once when this much is waiting; also the largest frame. @defaultValue 32768 */
  flushChars?: number;
  /** Output held across all builds while the master is unreachable. @defaultValue 8 MiB of characters */
  maxBufferedChars?: number;
}

interface Pending {
  queue: string;
  jobId: string;
  segments: Array<{ stream: Stream; data: string }>;
  chars: number;
  /** Output thrown away since the last successful flush. */
  dropped: number;
}

/**
 * Build output on its way to the master: coalesced into few frames, held while the socket is
 * down, and bounded so a chatty build on a disconnected agent cannot exhaust memory — the
 * build itself never waits for the master.
 */
export class LogOutbox {
  private readonly pending = new Map<string, Pending>();
  private buffered = 0;
  private timer: AbortController | undefined;
  private readonly flushMs: number;
  private readonly flushChars: number;
  private readonly maxBuffered: number;

  constructor(private readonly opts: LogOutboxOptions) {
    this.flushMs = opts.flushMs ?? 50;
    this.flushChars = opts.flushChars ?? 32 * 1024;
    this.maxBuffered = opts.maxBufferedChars ?? 8 * 1024 * 1024;
  }

  push(queue: string, jobId: string, stream: Stream, data: string): void {
    const key = keyOf(queue, jobId);
    let p = this.pending.get(key);
    if (!p) {
      p = { queue, jobId, segments: [], chars: 0, dropped: 0 };
      this.pending.set(key, p);
    }
    // Once a gap has opened, keep dropping until it is reported, so the marker sits where
    // the output is missing rather than somewhere later.
    if (p.dropped > 0 || this.buffered + data.length > this.maxBuffered) {
      if (p.dropped === 0) this.opts.onDrop?.(queue, jobId, data.length);
      p.dropped += data.length;
      return;
    }
    const last = p.segments[p.segments.length - 1];
    if (last && last.stream === stream && last.data.length + data.length <= this.flushChars) last.data += data;
    else p.segments.push({ stream, data });
    p.chars += data.length;
    this.buffered += data.length;
    if (p.chars >= this.flushChars) this.flushOne(key);
    else this.schedule();
  }

  /** Sends whatever is waiting for one build (before its `finished`), or for all builds. */
  flush(queue?: string, jobId?: string): void {
    if (queue !== undefined && jobId !== undefined) return this.flushOne(keyOf(queue, jobId));
    for (const key of [...this.pending.keys()]) this.flushOne(key);
  }

  /** Drops a build's waiting output (it was cancelled or taken away). */
  forget(queue: string, jobId: string): void {
    const key = keyOf(queue, jobId);
    const p = this.pending.get(key);
    if (!p) return;
    this.buffered -= p.chars;
    this.pending.delete(key);
  }

  close(): void {
    this.timer?.abort();
    this.timer = undefined;
  }

  private flushOne(key: string): void {
    const p = this.pending.get(key);
    if (!p || !this.opts.canSend()) return;
    for (const s of p.segments) this.opts.send({ type: 'log', queue: p.queue, jobId: p.jobId, stream: s.stream, data: s.data });
    if (p.dropped > 0) {
      const marker = `\n[spillway: ${p.dropped} characters of output dropped while the master was unreachable]\n`;
      this.opts.send({ type: 'log', queue: p.queue, jobId: p.jobId, stream: 'stderr', data: marker });
    }
    this.buffered -= p.chars;
    this.pending.delete(key);
  }

  private schedule(): void {
    if (this.timer) return;
    const timer = new AbortController();
    this.timer = timer;
    this.opts.clock.sleep(this.flushMs, timer.signal).then(
      () => {
        if (this.timer === timer) this.timer = undefined;
        this.flush();
        if (this.pending.size > 0 && this.opts.canSend()) this.schedule();
      },
      () => undefined,
    );
  }
}

export function keyOf(queue: string, jobId: string): string {
  return `${queue}\u0000${jobId}`;
}
