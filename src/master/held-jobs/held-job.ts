import type { Config } from '../../config';
import type { JobPayload, Notice } from '../../protocol';
import type { BuildIdentity } from '../build-store';
import type { CancelRequest } from '../cancel-store';
import type { QueuedJob } from '../job-queue';

/**
 * The agent a held job was handed to. `connId` is the one connection whose frames count;
 * `agentKey` names the agent across reconnects (its instance id, else its name), so the same
 * agent coming back on a new connection may take its builds over, and no other may.
 */
export interface Owner {
  readonly connId: string;
  readonly agentKey: string;
}

/** What a placed job knows of its run, kept across a disconnect and a reattach. */
interface Placed {
  readonly owner: Owner;
  readonly build: BuildIdentity;
  /** When the agent reported the build started; null until then. */
  readonly startedAt: number | null;
  /** Its machine got a spot notice: should the agent vanish, the build was preempted, not lost. */
  readonly notice: Notice | null;
}

/**
 * The life of a job this master holds the BullMQ lock of (`lock`, the token it was taken
 * with). A closed union: every change goes through `transition`.
 *
 *   (take) ─▶ pending ─place─▶ assigned ─start─▶ running ─finish/lose/preempt/lock-lost─▶ settled
 *   (assigned goes to settled by the same events; pending also by lock-lost)
 *             pending ◀─decline── assigned     (its agent will not run it after all)
 *               │                  │  ▲             │  ▲
 *     give-back / park         disconnect│reattach  disconnect│reattach
 *               ▼                  ▼  │             ▼  │
 *            settled              orphaned ──lose/preempt/lock-lost/finish─▶ settled
 *   (adopt) ─▶ assigned | running    (a restarted master takes back a build its agent reports)
 *
 *   cancel: pending ─▶ settled (never ran); orphaned ─▶ settled (its agent is away; the agent
 *   drops the build when it is back and not taken back); assigned | running ─▶ cancelling, the
 *   agent kills the build and reports: cancelling ─finish/decline/disconnect/lose/preempt─▶ settled.
 *   Every way out of cancelling settles `cancelled`: a cancelled job is never run again.
 */
export type HeldState =
  | { readonly kind: 'pending'; readonly lock: string }
  | ({ readonly kind: 'assigned'; readonly lock: string } & Placed)
  | ({ readonly kind: 'running'; readonly lock: string } & Placed)
  /** The owner's connection dropped at `since`; it has lostAfter to come back. */
  | ({ readonly kind: 'orphaned'; readonly lock: string; readonly since: number } & Placed)
  /** Cancelled while on its agent: the agent was told to kill the build; its executor stays taken until it reports. */
  | ({ readonly kind: 'cancelling'; readonly lock: string; readonly cancel: CancelRequest } & Placed)
  | { readonly kind: 'settled'; readonly how: SettledHow };

export type HeldKind = HeldState['kind'];
export const HELD_KINDS: readonly HeldKind[] = ['pending', 'assigned', 'running', 'orphaned', 'cancelling', 'settled'];
export type SettledHow = 'given-back' | 'parked' | 'finished' | 'lost' | 'preempted' | 'lock-lost' | 'cancelled';

/** Who sent a frame about a job: its connection, its agent key and the lock token it quoted. */
export interface Reporter {
  readonly connId: string;
  readonly agentKey: string;
  readonly token: string;
}

export type HeldEvent =
  /** Taken from its queue with lock token `lock`. */
  | { type: 'take'; lock: string }
  /** A build an agent reports running while nobody here held it (this master restarted). */
  | { type: 'adopt'; lock: string; owner: Owner; build: BuildIdentity; startedAt: number | null }
  | { type: 'place'; owner: Owner; build: BuildIdentity }
  | { type: 'start'; by: Reporter; at: number }
  /** The agent it was placed on will not run it (draining, disk full, no free executor). */
  | { type: 'decline'; by: Reporter }
  | { type: 'log'; by: Reporter }
  | { type: 'finish'; by: Reporter }
  | { type: 'disconnect'; connId: string; at: number }
  /** The same agent, on a new connection, reports the build still running. */
  | { type: 'reattach'; by: Reporter; build: BuildIdentity }
  | { type: 'notice'; notice: Notice }
  /** Its agent vanished: the build failed (retried while attempts remain). */
  | { type: 'lose' }
  /** Its machine went away after a notice: requeued, no attempt used. */
  | { type: 'preempt' }
  /** The lock could not be renewed: someone else holds the job now. */
  | { type: 'lock-lost' }
  /** Returned to its queue unrun (no agent here serves it, or the master stops). */
  | { type: 'give-back' }
  /** Put aside in its queue for a while: no connected agent can run it. */
  | { type: 'park' }
  /** Someone with a submit or admin token cancelled it (`POST /api/jobs/:id/cancel`). */
  | { type: 'cancel'; request: CancelRequest };

export type HeldEventType = HeldEvent['type'];
export const HELD_EVENTS: readonly HeldEventType[] = [
  'take', 'adopt', 'place', 'start', 'decline', 'log', 'finish', 'disconnect', 'reattach', 'notice', 'lose', 'preempt', 'lock-lost', 'give-back', 'park', 'cancel',
];

/**
 * Why a change was refused. `not-holder`: the frame came from a connection or agent the job
 * is not assigned to; `wrong-token`: from its holder, but quoting another lock (a stale run);
 * `wrong-state`: the event makes no sense in the job's state.
 */
export type RefusalCode = 'not-holder' | 'wrong-token' | 'wrong-state';
/** Why a frame about a job was refused: a refused transition, or no such job held here. */
export type FrameRefusal = RefusalCode | 'not-held';

/** A frame about a job that its sender may not send; counted and logged, never acted on. */
export class RefusedFrame extends Error {
  constructor(
    readonly code: FrameRefusal,
    reason: string,
  ) {
    super(reason);
  }
}

export type HeldTransition = { ok: true; next: HeldState } | { ok: false; code: RefusalCode; reason: string };

/** From which states each event may move a held job; `undefined` is "not held yet". */
export const HELD_TABLE: { readonly [E in HeldEventType]: readonly (HeldKind | undefined)[] } = {
  take: [undefined],
  adopt: [undefined],
  place: ['pending'],
  // Cancelling too: the cancel may cross the agent's "started" on the wire.
  start: ['assigned', 'cancelling'],
  // Only before it starts: a running build is never put back unnoticed. A cancelled one it ends.
  decline: ['assigned', 'cancelling'],
  log: ['assigned', 'running', 'cancelling'],
  // From orphaned too: an agent back after a reconnect reports what finished meanwhile.
  finish: ['assigned', 'running', 'orphaned', 'cancelling'],
  disconnect: ['assigned', 'running', 'cancelling'],
  reattach: ['assigned', 'running', 'orphaned'],
  notice: ['assigned', 'running', 'orphaned', 'cancelling'],
  lose: ['assigned', 'running', 'orphaned', 'cancelling'],
  preempt: ['assigned', 'running', 'orphaned', 'cancelling'],
  'lock-lost': ['pending', 'assigned', 'running', 'orphaned', 'cancelling'],
  'give-back': ['pending'],
  park: ['pending'],
  // Not cancelling: a second cancel changes nothing.
  cancel: ['pending', 'assigned', 'running', 'orphaned'],
};

/**
 * The one rule for frames about a job: they count only from its holder — the connection it
 * was assigned to, or the same agent (same key) after its connection dropped — quoting the
 * lock token it was given.
 */
function holderCheck(s: Placed & { kind: HeldKind; lock: string }, by: Reporter): HeldTransition | undefined {
  const sameConn = s.owner.connId === by.connId;
  const sameAgentBack = s.kind === 'orphaned' && s.owner.agentKey === by.agentKey;
  if (!sameConn && !sameAgentBack) return { ok: false, code: 'not-holder', reason: `job is not assigned to this agent (held by ${s.build.agent})` };
  if (s.lock !== by.token) return { ok: false, code: 'wrong-token', reason: 'lock token does not match the current attempt' };
  return undefined;
}

/** The one transition function: where `event` takes a held job in `state`, or why it cannot. */
export function transition(state: HeldState | undefined, event: HeldEvent): HeldTransition {
  if (!HELD_TABLE[event.type].includes(state?.kind)) {
    return { ok: false, code: 'wrong-state', reason: `${event.type} is not allowed ${state ? `in state ${state.kind}` : 'for a job not held'}` };
  }
  if (state === undefined) {
    if (event.type === 'take') return { ok: true, next: { kind: 'pending', lock: event.lock } };
    if (event.type === 'adopt') {
      const placed = { lock: event.lock, owner: event.owner, build: event.build, startedAt: event.startedAt, notice: null };
      return { ok: true, next: event.startedAt === null ? { kind: 'assigned', ...placed } : { kind: 'running', ...placed, startedAt: event.startedAt } };
    }
    return { ok: false, code: 'wrong-state', reason: `${event.type} is not allowed for a job not held` };
  }
  if (state.kind === 'settled') return { ok: false, code: 'wrong-state', reason: `${event.type} is not allowed in state settled` };
  if (state.kind === 'pending') {
    if (event.type === 'place') return { ok: true, next: { kind: 'assigned', lock: state.lock, owner: event.owner, build: event.build, startedAt: null, notice: null } };
    if (event.type === 'give-back') return { ok: true, next: { kind: 'settled', how: 'given-back' } };
    if (event.type === 'park') return { ok: true, next: { kind: 'settled', how: 'parked' } };
    if (event.type === 'cancel') return { ok: true, next: { kind: 'settled', how: 'cancelled' } };
    return { ok: true, next: { kind: 'settled', how: 'lock-lost' } };
  }
  if (state.kind === 'cancelling') return fromCancelling(state, event);
  switch (event.type) {
    case 'start':
      return holderCheck(state, event.by) ?? { ok: true, next: { ...state, kind: 'running', startedAt: event.at } };
    case 'decline':
      return holderCheck(state, event.by) ?? { ok: true, next: { kind: 'pending', lock: state.lock } };
    case 'log':
      return holderCheck(state, event.by) ?? { ok: true, next: state };
    case 'finish':
      return holderCheck(state, event.by) ?? { ok: true, next: { kind: 'settled', how: 'finished' } };
    case 'disconnect': {
      if (state.owner.connId !== event.connId) return { ok: false, code: 'not-holder', reason: 'job is not assigned to this connection' };
      return { ok: true, next: { ...state, kind: 'orphaned', since: event.at } };
    }
    case 'reattach': {
      const refused = holderCheck({ ...state, kind: 'orphaned' }, event.by);
      if (refused) return refused;
      const placed = { lock: state.lock, owner: { connId: event.by.connId, agentKey: event.by.agentKey }, build: event.build, startedAt: state.startedAt, notice: state.notice };
      return { ok: true, next: placed.startedAt === null ? { kind: 'assigned', ...placed } : { kind: 'running', ...placed } };
    }
    case 'notice':
      // An interruption notice is final; a rebalance recommendation does not soften it.
      return { ok: true, next: { ...state, notice: state.notice === 'spot-interruption' ? state.notice : event.notice } };
    case 'lose':
      return { ok: true, next: { kind: 'settled', how: 'lost' } };
    case 'preempt':
      return { ok: true, next: { kind: 'settled', how: 'preempted' } };
    case 'lock-lost':
      return { ok: true, next: { kind: 'settled', how: 'lock-lost' } };
    case 'cancel':
      // An orphaned build's agent is away: nobody can be told to kill it until it is back,
      // and then it is not taken back, so the agent drops it.
      if (state.kind === 'orphaned') return { ok: true, next: { kind: 'settled', how: 'cancelled' } };
      return { ok: true, next: { ...state, kind: 'cancelling', cancel: event.request } };
    default:
      return { ok: false, code: 'wrong-state', reason: `${event.type} is not allowed in state ${state.kind}` };
  }
}

/** A cancelled build on its agent: only its holder reports on it, and whatever ends it ends it cancelled. */
function fromCancelling(state: Extract<HeldState, { kind: 'cancelling' }>, event: HeldEvent): HeldTransition {
  const cancelled: HeldTransition = { ok: true, next: { kind: 'settled', how: 'cancelled' } };
  switch (event.type) {
    case 'start':
      return holderCheck(state, event.by) ?? { ok: true, next: { ...state, startedAt: state.startedAt ?? event.at } };
    case 'log':
      return holderCheck(state, event.by) ?? { ok: true, next: state };
    case 'finish':
    case 'decline':
      return holderCheck(state, event.by) ?? cancelled;
    case 'disconnect':
      if (state.owner.connId !== event.connId) return { ok: false, code: 'not-holder', reason: 'job is not assigned to this connection' };
      return cancelled;
    case 'notice':
      return { ok: true, next: { ...state, notice: state.notice === 'spot-interruption' ? state.notice : event.notice } };
    case 'lose':
    case 'preempt':
    case 'lock-lost':
      return cancelled;
    default:
      return { ok: false, code: 'wrong-state', reason: `${event.type} is not allowed in state cancelling` };
  }
}

/** A job this master has taken from its queue and holds the BullMQ lock of. */
export interface HeldJob {
  /** `queue/jobId`, the job's name in the agents' running sets. */
  readonly key: string;
  readonly queue: string;
  readonly job: QueuedJob;
  readonly payload: JobPayload;
  readonly attempt: number;
  readonly timeoutSec: number;
  /** Changed only by `HeldJobs.apply`. */
  readonly state: Exclude<HeldState, { kind: 'settled' }>;
  /** This build's Redis writes in arrival order; the result is recorded after them, so its log is complete. */
  writes: Promise<void>;
}

export const buildKey = (queue: string, jobId: string): string => `${queue}/${jobId}`;

/** The lock token of a held job. */
export const lockOf = (h: Pick<HeldJob, 'state'>): string => h.state.lock;

/** The owner and run of a placed job (a cancelled one until its agent reports); undefined while it waits for an executor. */
export function placedOf(s: HeldState): (Placed & { kind: 'assigned' | 'running' | 'orphaned' | 'cancelling' }) | undefined {
  return s.kind === 'assigned' || s.kind === 'running' || s.kind === 'orphaned' || s.kind === 'cancelling' ? s : undefined;
}

/** Who an agent is across reconnects (see `Owner.agentKey`). */
export const agentKeyOf = (a: { name: string; instanceId: string | undefined }): string =>
  a.instanceId ? `instance:${a.instanceId}` : `name:${a.name}`;

export function identityOf(
  h: Pick<HeldJob, 'job' | 'queue' | 'attempt'>,
  agent: { name: string; location: BuildIdentity['location']; instanceId: string | undefined },
  dispatchedAt: number,
): BuildIdentity {
  return {
    id: h.job.id,
    type: h.queue,
    attempt: h.attempt,
    agent: agent.name,
    location: agent.location,
    instanceId: agent.instanceId ?? null,
    queuedAt: h.job.timestamp,
    dispatchedAt,
  };
}

/**
 * The attempt a build of this job is: BullMQ's failed attempts plus the job's preempted runs
 * plus one, so "attempt 2" means the first run failed (e.g. its agent was lost) or was
 * preempted; the latter never consumes one of BullMQ's attempts. BullMQ's attemptsStarted alone
 * would also count a job taken and handed back unrun, or restarted after its master died, but
 * it bounds the rest: a job started no more often than its failed attempts explain was never
 * preempted, so the common case reads nothing from Redis.
 */
export async function attemptOf(queue: string, job: QueuedJob, builds: { preemptions(type: string, id: string): Promise<number> }): Promise<number> {
  const preempted = job.attemptsStarted > job.attemptsMade + 1 ? await builds.preemptions(queue, job.id) : 0;
  return job.attemptsMade + 1 + preempted;
}

/** A build's time limit: the payload's, else its job type's, else an hour. */
export function timeoutOf(config: Pick<Config, 'jobTypes'>, queue: string, fromPayload: number | undefined): number {
  return fromPayload ?? config.jobTypes[queue]?.timeoutSec ?? 3600;
}

/** The job type's disk limit, sent beside the payload (which an action's digest covers, so it is never rewritten). */
export function diskDefault(config: Pick<Config, 'jobTypes'>, queue: string, payload: JobPayload): { diskMb?: number } {
  const diskMb = config.jobTypes[queue]?.diskMb;
  return payload.resources?.diskMb === undefined && diskMb !== undefined ? { diskMb } : {};
}
