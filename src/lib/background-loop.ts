import type { Clock } from './clock';
import type { Logger } from './logger';
import type { LogEvent } from './log-events';

/**
 * What a run may ask of its loop: nothing (pause `everyMs`), another pause before the next
 * run (`{ afterMs: 0 }` runs again at once), or `'done'` to end the loop as `stop()` would.
 */
export type LoopNext = void | { afterMs: number } | 'done';

/** Options of {@link BackgroundLoop}. */
export interface BackgroundLoopOptions {
  /** Named in the error log line. */
  name: string;
  /** Pause between the end of one run and the start of the next, on `clock`. */
  everyMs: number;
  /** One run. `signal` aborts when the loop stops; a run that ignores it delays `stop()`. */
  run: (signal: AbortSignal) => Promise<LoopNext>;
  clock: Clock;
  log: Logger;
  /** Logged (with `loop` and `error`) when a run throws; the loop carries on. */
  errorEvent: LogEvent;
  /** Run as soon as started instead of after the first pause. @defaultValue false */
  runAtStart?: boolean;
}

/**
 * One shape for background loops: `start()` / `stop()`, never two runs at once, a run's error
 * reported and the loop carried on, and `kick()` to run now instead of at the end of the pause.
 * Pauses sleep on the injected clock, so tests step a loop instead of waiting for it. A loop
 * runs once: after `stop()`, `start()` does nothing; make a new one to start again.
 */
export class BackgroundLoop {
  private readonly abort = new AbortController();
  private done: Promise<void> | undefined;
  private kicked = false;
  private wake: (() => void) | undefined;

  constructor(private readonly o: BackgroundLoopOptions) {}

  start(): void {
    if (this.abort.signal.aborted) return;
    this.done ??= this.loop();
  }

  /**
   * Runs now: cuts the pause short, or, during a run, runs again right after it. Kicks that
   * arrive during one run make one more run, not one each.
   */
  kick(): void {
    this.kicked = true;
    this.wake?.();
  }

  /** Aborts the current run's signal, ends the pause, and resolves once the loop has ended. */
  async stop(): Promise<void> {
    this.abort.abort();
    this.wake?.();
    await this.done;
  }

  private async loop(): Promise<void> {
    const signal = this.abort.signal;
    let pauseMs = this.o.runAtStart ? 0 : this.o.everyMs;
    while (await this.pause(pauseMs)) {
      this.kicked = false;
      let next: LoopNext;
      try {
        next = await this.o.run(signal);
      } catch (error) {
        // A run that fails because the loop is stopping has nothing to report.
        if (signal.aborted) return;
        this.o.log.error(this.o.errorEvent, { loop: this.o.name, error });
        next = undefined;
      }
      if (next === 'done') return;
      pauseMs = next?.afterMs ?? this.o.everyMs;
    }
  }

  /** Sleeps `ms` unless kicked meanwhile; false once the loop is stopped. */
  private async pause(ms: number): Promise<boolean> {
    const signal = this.abort.signal;
    if (signal.aborted) return false;
    if (this.kicked || ms <= 0) return true;
    const woken = new AbortController();
    this.wake = () => woken.abort();
    try {
      await this.o.clock.sleep(ms, AbortSignal.any([signal, woken.signal]));
    } catch {
      // Woken early, by kick() or stop(): the check below tells which.
    } finally {
      this.wake = undefined;
    }
    return !signal.aborted;
  }
}

/**
 * Runs `fn` every `ms` on the injected clock until `signal` aborts, never two runs at once, an
 * error reported (`errorEvent`) and the loop carried on. The same loop as
 * {@link BackgroundLoop}, for callers that own an AbortSignal rather than a loop object;
 * resolves once the loop has ended.
 */
export function runEvery(
  name: string,
  ms: number,
  fn: () => Promise<void>,
  d: { clock: Clock; signal: AbortSignal; log: Logger; errorEvent: LogEvent },
): Promise<void> {
  if (d.signal.aborted) return Promise.resolve();
  const loop = new BackgroundLoop({ name, everyMs: ms, run: fn, clock: d.clock, log: d.log, errorEvent: d.errorEvent });
  const ended = new Promise<void>((resolve) => d.signal.addEventListener('abort', () => resolve(loop.stop()), { once: true }));
  loop.start();
  return ended;
}
