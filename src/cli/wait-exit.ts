import type { BuildRecord, JobView } from '../master';

/**
 * What `spillway submit --wait` exits with when the build's own exit code cannot say it. Far
 * from the codes builds commonly use, and from 124 (a build timed out) and 128+N (killed by
 * signal N).
 */
export const WaitExit = {
  /** The job failed without its command running to an end: invalid job, command not startable, agent lost on every attempt. */
  notRun: 125,
  /** The master could not be reached for longer than --wait-timeout; the job may still run. */
  contactLost: 75,
  /** The job was cancelled or removed from its queue. */
  cancelled: 130,
} as const;

export interface WaitEnd {
  code: number;
  reason: string;
}

/** Results of a build whose command ran to an end: its exit code is the build's own. */
const RAN: ReadonlySet<BuildRecord['result']> = new Set(['success', 'failure', 'timeout', 'signal', 'oom']);

/** How a finished job maps to an exit code: the build's own when it ran, else what kept it from running. */
export function waitExitOf(view: Pick<JobView, 'state' | 'exitCode' | 'failedReason' | 'builds'>): WaitEnd {
  if (view.state === 'completed') return { code: view.exitCode ?? 0, reason: 'exited 0' };
  const last = view.builds[view.builds.length - 1];
  const reason = view.failedReason ?? last?.reason ?? view.state;
  if (last?.result === 'cancelled' || /^cancel/i.test(view.failedReason ?? '')) return { code: WaitExit.cancelled, reason };
  if (last && RAN.has(last.result)) return { code: view.exitCode ?? 1, reason };
  return { code: WaitExit.notRun, reason };
}
