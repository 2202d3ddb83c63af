import type { Clock } from './clock';
import type { LogEvent } from './log-events';
import type { LogFields, Logger } from './logger';
import { RepeatLog } from './repeat-log';

/** A refused address (or agent) is logged at most this often; the lines in between are counted. */
const WINDOW_MS = 10_000;
/** Many more peers than error kinds: a scan from many addresses must still be folded. */
const PRUNE_ABOVE = 10_000;

/**
 * Warnings about refused peers, one line per address (or agent) and event per window with a
 * count of the refusals folded into it: a flood from one peer must not become a flood of log lines.
 */
export class RefusalLog {
  private readonly repeats: RepeatLog;

  constructor(log: Logger, clock: Pick<Clock, 'now'>) {
    this.repeats = new RepeatLog(log, clock, WINDOW_MS, PRUNE_ABOVE);
  }

  warn(event: LogEvent, address: string, fields: LogFields): void {
    this.repeats.warn(event, address, { address, ...fields });
  }

  /** The same per agent (by name), for refusals of what a connected agent sent. */
  warnAgent(event: LogEvent, agent: string, fields: LogFields): void {
    this.repeats.warn(event, `agent ${agent}`, { agent, ...fields });
  }
}
