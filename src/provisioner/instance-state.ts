import type { Notice } from '../protocol';
import type { InstanceRecord, InstanceState } from './instance';

export type InstanceEvent =
  /** Claimed for waking: only one caller wins this transition, and only it calls the provider. */
  | { type: 'wake' }
  /** The start call failed in a way waiting can fix (throttled, no capacity): still stopped, woken later. */
  | { type: 'wake-deferred'; reason: string }
  /** A new instance is being launched (the record is created in `launching`). */
  | { type: 'launch' }
  /** The provider accepted the start/launch call; the machine boots. */
  | { type: 'started' }
  /** Its agent said hello to a master. */
  | { type: 'registered'; agent: string }
  | { type: 'job-started' }
  | { type: 'jobs-done'; at: number }
  /** Quiet period over: no new jobs, finish and suspend. */
  | { type: 'drain'; reason: string }
  /** A spot interruption warning or rebalance recommendation: no new jobs, never taken back. */
  | { type: 'notice'; notice: Notice }
  /** Backlog came back while draining: keep it. */
  | { type: 'undrain' }
  /** The agent is idle and drained; the provider is asked to stop it. */
  | { type: 'suspend'; reason: string }
  /** The provider reports it stopped, and whether it really hibernated. */
  | { type: 'stopped'; hibernated: boolean; reason: string }
  | { type: 'fail'; reason: string }
  | { type: 'terminated'; reason: string };

export type Transition = { ok: true; next: InstanceState } | { ok: false; reason: string };

/** From which states each event may move an instance, and where to. */
const TABLE: { [E in InstanceEvent['type']]: { from: readonly InstanceState[]; to: InstanceState } } = {
  wake: { from: ['suspended'], to: 'waking' },
  'wake-deferred': { from: ['waking'], to: 'suspended' },
  launch: { from: [], to: 'launching' },
  started: { from: ['waking', 'launching'], to: 'booting' },
  registered: { from: ['waking', 'launching', 'booting', 'failed', 'suspended'], to: 'idle' },
  'job-started': { from: ['idle', 'booting'], to: 'busy' },
  'jobs-done': { from: ['busy'], to: 'idle' },
  drain: { from: ['idle'], to: 'draining' },
  // From `retiring` too: a rebalance recommendation may be followed by the interruption itself.
  notice: { from: ['launching', 'waking', 'booting', 'idle', 'busy', 'draining', 'retiring'], to: 'retiring' },
  undrain: { from: ['draining'], to: 'idle' },
  suspend: { from: ['draining', 'retiring', 'failed'], to: 'suspending' },
  stopped: { from: ['suspending', 'failed'], to: 'suspended' },
  fail: { from: ['launching', 'waking', 'booting', 'idle', 'busy', 'draining', 'retiring', 'suspending'], to: 'failed' },
  terminated: {
    from: ['launching', 'waking', 'booting', 'idle', 'busy', 'draining', 'retiring', 'suspending', 'suspended', 'failed'],
    to: 'terminated',
  },
};

/** The one transition function: where `event` takes an instance in `state`, or why it cannot. */
export function transition(state: InstanceState | undefined, event: InstanceEvent): Transition {
  const rule = TABLE[event.type];
  if (state === undefined) {
    return rule.from.length === 0 ? { ok: true, next: rule.to } : { ok: false, reason: `no such instance for ${event.type}` };
  }
  if (!rule.from.includes(state)) return { ok: false, reason: `${event.type} is not allowed in state ${state}` };
  return { ok: true, next: rule.to };
}

/** The states `event` may leave from (what an atomic compare-and-set checks in Redis). */
export function allowedFrom(event: InstanceEvent['type']): readonly InstanceState[] {
  return TABLE[event].from;
}

/** The notice a retiring instance got (the `notice` event writes it as the reason); undefined if not retiring. */
export function noticeOf(r: Pick<InstanceRecord, 'state' | 'reason'>): Notice | undefined {
  if (r.state !== 'retiring') return undefined;
  return r.reason === 'rebalance' ? 'rebalance' : 'spot-interruption';
}

/** The fields an event sets besides the state. Every event sets `reason`, so it always explains the state the event leads to and never an earlier one. */
export function eventFields(event: InstanceEvent): Partial<Omit<InstanceRecord, 'id' | 'pool' | 'state' | 'since' | 'version'>> {
  switch (event.type) {
    case 'registered':
      return { agent: event.agent, reason: null };
    case 'jobs-done':
      return { lastJobEndedAt: event.at, reason: null };
    case 'notice':
      return { reason: event.notice };
    case 'drain':
    case 'wake-deferred':
    case 'suspend':
    case 'fail':
    case 'terminated':
      return { reason: event.reason };
    case 'stopped':
      return { hibernated: event.hibernated, reason: event.reason };
    case 'wake':
    case 'launch':
    case 'undrain':
    case 'started':
    case 'job-started':
      return { reason: null };
  }
}
