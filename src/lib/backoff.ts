/** Exponential backoff limits. */
export interface BackoffPolicy {
  /** Ceiling of the first pause; doubles with every failure in a row. */
  baseMs: number;
  /** Largest pause. */
  maxMs: number;
}

/**
 * The pause after the `failures`-th failure in a row (1-based): exponential, capped, with
 * "equal jitter" (half the ceiling fixed, half random). The fixed half keeps the pauses
 * growing; the random half keeps the masters of one farm from retrying in step.
 */
export function equalJitterDelay(failures: number, policy: Readonly<BackoffPolicy>, random: () => number): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, failures - 1));
  return Math.floor(ceiling / 2 + (ceiling / 2) * random());
}
