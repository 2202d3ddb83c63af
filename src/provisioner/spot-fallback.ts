import type { TypeShare } from './capacity';

/** What the on-demand fallback decision looks at, for one pool. */
export interface SpotFallbackInput {
  /** The pool launches spot instances. */
  spot: boolean;
  /** The pool may launch on-demand at all (`ec2.spotFallbackToOnDemand`). */
  onDemandAllowed: boolean;
  /** Preemptions of one type within the window that send its launches on-demand; 0 = never. */
  fallbackAfter: number;
  windowMin: number;
  /** Preempted builds per job type within the window. */
  preemptions: ReadonlyMap<string, number>;
}

/** Which job types' launches go on-demand now, and why (one line for logs and GET /api/pools). */
export interface SpotFallback {
  onDemandTypes: string[];
  reason: string;
}

/**
 * Spot is cheap until it keeps getting taken away: a job type preempted `fallbackAfter` times
 * within the window gets on-demand launches until the window holds fewer preemptions again.
 */
export function spotFallback(i: SpotFallbackInput): SpotFallback {
  if (!i.spot) return { onDemandTypes: [], reason: 'not a spot pool' };
  if (!i.onDemandAllowed) return { onDemandTypes: [], reason: 'on-demand not allowed (spotFallbackToOnDemand: false)' };
  if (i.fallbackAfter <= 0) return { onDemandTypes: [], reason: 'preemption fallback off' };
  const hit = [...i.preemptions].filter(([, n]) => n >= i.fallbackAfter).sort(([a], [b]) => a.localeCompare(b));
  if (hit.length === 0) return { onDemandTypes: [], reason: `no job type preempted ${i.fallbackAfter}+ times in ${i.windowMin}m` };
  return {
    onDemandTypes: hit.map(([t]) => t),
    reason: `on-demand for ${hit.map(([t, n]) => `${t} (${n} preemptions in ${i.windowMin}m >= ${i.fallbackAfter})`).join(', ')}`,
  };
}

/**
 * Splits `launch` new instances between on-demand and the pool's usual market: the executors
 * the fallen-back types still want go on-demand (rounded up to instances), the rest as usual.
 */
export function launchMarkets(launch: number, executorsPerInstance: number, types: readonly TypeShare[], onDemandTypes: readonly string[]): { usual: number; onDemand: number } {
  const wanted = types.filter((t) => onDemandTypes.includes(t.type)).reduce((n, t) => n + t.backlog, 0);
  const onDemand = Math.min(launch, Math.ceil(wanted / executorsPerInstance));
  return { usual: launch - onDemand, onDemand };
}
