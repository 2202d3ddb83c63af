/**
 * Log capture for the in-process parts of the scale benchmark: the master's and the
 * provisioners' structured log entries are the timestamps the phases measure by, so they are
 * kept with their arrival time and can be awaited.
 */
import { createLogger, type LogEntry } from '../src/lib';

export interface TimedEntry extends LogEntry {
  /** When the sink received it (Date.now()). */
  at: number;
}

/** A logger whose entries are kept (with the time they arrived) and can be waited for. */
export function captureLogs(level: 'info' | 'debug' = 'info') {
  const entries: TimedEntry[] = [];
  const waiters: Array<{ from: number; pred: (e: TimedEntry) => boolean; resolve: (e: TimedEntry) => void }> = [];
  const log = createLogger({
    level,
    silent: true,
    sink: (e) => {
      const t: TimedEntry = { ...e, at: Date.now() };
      entries.push(t);
      const idx = entries.length - 1;
      for (const w of [...waiters]) {
        if (idx >= w.from && w.pred(t)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(t);
        }
      }
    },
  });
  const find = (from: number, pred: (e: TimedEntry) => boolean) => entries.slice(from).find(pred);
  return {
    log,
    entries,
    find,
    /** The first entry at index >= from matching, already logged or future. */
    waitFrom(from: number, what: string, timeoutMs: number, pred: (e: TimedEntry) => boolean): Promise<TimedEntry> {
      const hit = find(from, pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const w = {
          from,
          pred,
          resolve: (e: TimedEntry) => {
            clearTimeout(timer);
            resolve(e);
          },
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
  };
}

export type LogCapture = ReturnType<typeof captureLogs>;
