import type { Clock } from './clock';
import type { LogEvent } from './log-events';
import type { LogFields, Logger } from './logger';

interface Seen {
  /** When the current window began (the line that opened it was logged then). */
  since: number;
  repeated: number;
  level: 'error' | 'warn';
  fields: LogFields;
}

/**
 * Errors that repeat while a dependency is down (every reconnect attempt of every Redis
 * connection and BullMQ queue raises one), logged as one line per kind and window: the first
 * at once, later ones counted and reported as `repeated: N` when the window has passed or the
 * dependency recovered ({@link flush}). An outage then costs a few lines, not thousands.
 */
export class RepeatLog {
  private readonly seen = new Map<string, Seen>();

  /**
   * @param windowMs how long repeats are folded into one line. @defaultValue 60000
   * @param pruneAbove how many kinds are kept before those whose window is over are dropped. @defaultValue 1000
   */
  constructor(
    private readonly log: Logger,
    private readonly clock: Pick<Clock, 'now'>,
    private readonly windowMs = 60_000,
    private readonly pruneAbove = 1_000,
  ) {}

  /** `kind` tells repeats apart from new errors (e.g. the queue and the error's message). */
  error(event: LogEvent, kind: string, fields: LogFields): void {
    this.record('error', event, kind, fields);
  }

  warn(event: LogEvent, kind: string, fields: LogFields): void {
    this.record('warn', event, kind, fields);
  }

  /** Reports the repeats counted so far and forgets them (the dependency is back). */
  flush(): void {
    const now = this.clock.now();
    for (const [key, s] of this.seen) {
      if (s.repeated > 0) this.summary(key, s, now);
    }
    this.seen.clear();
  }

  private record(level: 'error' | 'warn', event: LogEvent, kind: string, fields: LogFields): void {
    const now = this.clock.now();
    const key = `${event}\u0000${kind}`;
    const s = this.seen.get(key);
    if (s && now - s.since < this.windowMs) {
      s.repeated++;
      s.fields = fields;
      return;
    }
    if (s && s.repeated > 0) {
      // The window is over: its count, with this occurrence, is the line that opens the next.
      s.repeated++;
      s.fields = fields;
      this.summary(key, s, now);
      this.seen.set(key, { since: now, repeated: 0, level, fields });
      return;
    }
    if (this.seen.size > this.pruneAbove) for (const [k, v] of this.seen) if (now - v.since >= this.windowMs) this.seen.delete(k);
    this.seen.set(key, { since: now, repeated: 0, level, fields });
    this.log[level](event, fields);
  }

  private summary(key: string, s: Seen, now: number): void {
    const event = key.slice(0, key.indexOf('\u0000')) as LogEvent;
    const sec = Math.max(1, Math.round((now - s.since) / 1000));
    this.log[s.level](event, { ...s.fields, repeated: s.repeated, windowSec: sec, message: `repeated ${s.repeated} times in the last ${sec}s` });
  }
}
