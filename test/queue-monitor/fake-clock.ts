import type { Clock } from '../../src/lib';

interface Sleeper {
  until: number;
  resolve: () => void;
}

/**
 * A clock whose time moves only when the test says so. `advance` resolves the sleeps that are
 * due; `sleeping()` waits until some code is asleep on the clock, so a test can step a loop
 * without guessing when it got there.
 */
export class FakeClock implements Clock {
  private sleepers: Sleeper[] = [];
  private waiters: Array<() => void> = [];

  constructor(private t = 1_700_000_000_000) {}

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const sleeper: Sleeper = {
        until: this.t + ms,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.sleepers = this.sleepers.filter((s) => s !== sleeper);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.sleepers.push(sleeper);
      const waiters = this.waiters;
      this.waiters = [];
      waiters.forEach((w) => w());
    });
  }

  /** Resolves once at least one sleep is pending. */
  sleeping(): Promise<void> {
    if (this.sleepers.length > 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Moves time forward and wakes every sleeper now due. */
  advance(ms: number): void {
    this.t += ms;
    const due = this.sleepers.filter((s) => s.until <= this.t);
    this.sleepers = this.sleepers.filter((s) => s.until > this.t);
    due.forEach((s) => s.resolve());
  }
}
