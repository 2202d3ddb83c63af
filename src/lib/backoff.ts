/** Exponential backoff limits. */
export interface BackoffPolicy {
  /** Ceiling of the first pause; doubles with every failure in a row. */
  baseMs: number;
  /** Largest pause. */
  maxMs: number;
}

/** The ceiling of the pause after the `failures`-th failure in a row (1-based). */
function ceilingOf(failures: number, policy: Readonly<BackoffPolicy>): number {
  // The exponent is capped so a long outage cannot overflow it into Infinity * 0 = NaN.
  return Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
}

/**
 * The pause after the `failures`-th failure in a row (1-based): exponential, capped, with
 * "equal jitter" (half the ceiling fixed, half random). The fixed half keeps the pauses
 * growing; the random half keeps the masters of one farm from retrying in step.
 */
export function equalJitterDelay(failures: number, policy: Readonly<BackoffPolicy>, random: () => number): number {
  const ceiling = ceilingOf(failures, policy);
  return Math.floor(ceiling / 2 + (ceiling / 2) * random());
}

/**
 * The pause after the `failures`-th failure in a row (1-based): exponential, capped, with
 * "full jitter" (anywhere below the ceiling). It spreads a fleet of agents that lost the master
 * at the same moment, so they don't all come back at once
 * (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
 */
export function fullJitterDelay(failures: number, policy: Readonly<BackoffPolicy>, random: () => number): number {
  return Math.floor(random() * ceilingOf(failures, policy));
}
