/**
 * The life of a cloud instance as spillway tracks it (in Redis, shared by all masters); the
 * events are those of `instance-state.ts`, whose table is the authority:
 *
 *   (none) -launch-> launching -started-> booting -registered-> idle <-job-started/jobs-done-> busy
 *   suspended -wake-> waking -started-> booting;   booting -job-started-> busy
 *   waking -wake-deferred-> suspended  (the start call failed in a way waiting can fix: throttled,
 *                                       no capacity; the machine is still stopped, woken later)
 *   launching/waking/booting/failed/suspended -registered-> idle      (its agent said hello)
 *   idle -drain-> draining -suspend-> suspending -stopped-> suspended  (quiet period over)
 *   draining -undrain-> idle                                          (backlog came back)
 *   launching/waking/booting/idle/busy/draining/retiring -notice-> retiring -suspend-> suspending
 *   failed -suspend-> suspending, failed -stopped-> suspended         (cleaning up a failure)
 *   any but suspended/failed/terminated -fail-> failed (boot timeout, provider error, agent lost)
 *   any but terminated -terminated-> terminated
 *
 * `stopped` and `terminated` after a suspend record what the provider did, not what was asked
 * (a refused hibernation is a plain stop; a spot instance that cannot stop is terminated), and
 * a terminated record is then removed. Busy/idle follows the builds the dispatcher has placed
 * on the instance's agent (see instance-activity.ts).
 *
 * A launch is recorded before its RunInstances goes out: one `launching` record per instance
 * asked for, with an id from {@link pendingLaunchId} (EC2 has not named the instance yet) and
 * the launch's `clientToken`. When EC2 answers, each instance it gave gets its own record and
 * the pending ones are removed; after a crash the reconciler settles them by ClientToken. So
 * the pool's cap and capacity count a launch in flight, on every master and the dashboard.
 *
 * `retiring` is not `draining`: a quiet-period drain is undone when backlog returns, a notice
 * never is (the machine is going away), so no transition leads from it back to work.
 */
export const INSTANCE_STATES = [
  'launching',
  'waking',
  'booting',
  'idle',
  'busy',
  'draining',
  'retiring',
  'suspending',
  'suspended',
  'failed',
  'terminated',
] as const;

export type InstanceState = (typeof INSTANCE_STATES)[number];

/** What the pool knows of one instance. Stored as a Redis hash; `version` grows with every change. */
export interface InstanceRecord {
  id: string;
  pool: string;
  state: InstanceState;
  /** When the instance entered `state` (ms). */
  since: number;
  version: number;
  /** Private address inside the VPC (over the VPN), when known. */
  privateIp: string | null;
  spot: boolean;
  /** Suspended with hibernation, as the provider reported it: resumes fastest, so it is woken first. */
  hibernated: boolean;
  /** Name of the agent that registered from this instance. */
  agent: string | null;
  /** When the instance's last build ended; the quiet period counts from here. */
  lastJobEndedAt: number | null;
  /** Why the instance is in its current state, for humans; every transition sets or clears it. */
  reason: string | null;
  /** The ClientToken of the launch that made it (or, pending, is making it); absent or null for adopted ones. */
  clientToken?: string | null;
}

const PENDING_PREFIX = 'launching:';

/** The id of the n-th instance a launch asked for, until EC2 names it. */
export function pendingLaunchId(clientToken: string, n: number): string {
  return `${PENDING_PREFIX}${clientToken}#${n}`;
}

/** A record of an instance asked for whose launch has not been answered: no provider call may name it. */
export function isPendingLaunch(id: string): boolean {
  return id.startsWith(PENDING_PREFIX);
}

/** Coming up but not yet able to take a job. */
export const STARTING_STATES: ReadonlySet<InstanceState> = new Set(['launching', 'waking', 'booting']);
