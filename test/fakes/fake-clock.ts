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
  private waiters: Array<{ count: number; resolve: () => void }> = [];

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
      const due = this.waiters.filter((w) => this.sleepers.length >= w.count);
      this.waiters = this.waiters.filter((w) => this.sleepers.length < w.count);
      due.forEach((w) => w.resolve());
    });
  }

  /** Resolves once at least `count` sleeps are pending (several loops asleep at once). */
  sleeping(count = 1): Promise<void> {
    if (this.sleepers.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  /** How many sleeps are pending now. */
  pending(): number {
    return this.sleepers.length;
  }

  /** When the earliest pending sleep is due, or undefined when nobody sleeps. */
  nextDue(): number | undefined {
    return this.sleepers.length ? Math.min(...this.sleepers.map((s) => s.until)) : undefined;
  }

  /** Moves time forward and wakes every sleeper now due. */
  advance(ms: number): void {
    this.t += ms;
    const due = this.sleepers.filter((s) => s.until <= this.t);
    this.sleepers = this.sleepers.filter((s) => s.until > this.t);
    due.forEach((s) => s.resolve());
  }
}
