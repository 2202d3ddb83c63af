/**
 * The life of a cloud instance as spillway tracks it (in Redis, shared by all masters); the
 * events are those of `instance-state.ts`, whose table is the authority:
 *
 *   (none) -launch-> launching -started-> booting -registered-> idle <-job-started/jobs-done-> busy
 *   suspended -wake-> waking -started-> booting;   booting -job-started-> busy
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
}

/** Coming up but not yet able to take a job. */
export const STARTING_STATES: ReadonlySet<InstanceState> = new Set(['launching', 'waking', 'booting']);
