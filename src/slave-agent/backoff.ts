/** Reconnect delays: exponential, capped, with full jitter. */
export interface BackoffOptions {
  /** @defaultValue 500 */
  baseMs?: number;
  /** @defaultValue 30000 */
  capMs?: number;
}

export const DEFAULT_BACKOFF = { baseMs: 500, capMs: 30_000 } as const;

/**
 * The delay before reconnect attempt `attempt` (0-based). Full jitter spreads a fleet of
 * agents that lost the master at the same moment, so they don't all come back at once
 * (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const base = options.baseMs ?? DEFAULT_BACKOFF.baseMs;
  const cap = options.capMs ?? DEFAULT_BACKOFF.capMs;
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
