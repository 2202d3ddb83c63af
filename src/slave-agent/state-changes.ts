import type { Clock } from '../lib';

/**
 * Lets async code wait for a condition over the agent's state (no builds running, no
 * unacknowledged results) without polling: every state change calls `notify()`.
 */
export class StateChanges {
  private waiters: Array<() => void> = [];

  constructor(private readonly clock: Clock) {}

  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves true once `pred` holds, or with `pred()`'s value after `timeoutMs`. */
  async waitFor(pred: () => boolean, timeoutMs?: number): Promise<boolean> {
    const timer = new AbortController();
    const timeout =
      timeoutMs === undefined
        ? undefined
        : this.clock.sleep(timeoutMs, timer.signal).then(
            () => false as const,
            () => false as const,
          );
    try {
      while (!pred()) {
        const changed = new Promise<true>((resolve) => this.waiters.push(() => resolve(true)));
        if ((await (timeout ? Promise.race([changed, timeout]) : changed)) === false) return pred();
      }
      return true;
    } finally {
      timer.abort();
    }
  }
}
