import type { Clock } from './clock';
import type { LogEvent } from './log-events';
import type { LogFields, Logger } from './logger';

/** A refused address (or agent) is logged at most this often; the lines in between are counted. */
const WINDOW_MS = 10_000;
const PRUNE_ABOVE = 10_000;

/**
 * Warnings about refused peers, one line per address (or agent) and event per window with a
 * count of the refusals folded into it: a flood from one peer must not become a flood of log lines.
 */
export class RefusalLog {
  private readonly seen = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly clock: Clock,
  ) {}

  warn(event: LogEvent, address: string, fields: LogFields): void {
    this.limited(event, address, { address, ...fields });
  }

  /** The same per agent (by name), for refusals of what a connected agent sent. */
  warnAgent(event: LogEvent, agent: string, fields: LogFields): void {
    this.limited(event, `agent ${agent}`, { agent, ...fields });
  }

  private limited(event: LogEvent, peer: string, fields: LogFields): void {
    const now = this.clock.now();
    const key = `${event} ${peer}`;
    const s = this.seen.get(key);
    if (s && now - s.at < WINDOW_MS) {
      s.suppressed++;
      return;
    }
    if (this.seen.size > PRUNE_ABOVE) for (const [k, v] of this.seen) if (now - v.at >= WINDOW_MS) this.seen.delete(k);
    this.seen.set(key, { at: now, suppressed: 0 });
    this.log.warn(event, { ...fields, ...(s?.suppressed && { suppressed: s.suppressed }) });
  }
}
