import type { JobPayload } from '../../protocol';
import type { AgentRegistry, ConnectedAgent } from '../agent-registry';
import { buildKey, placedOf, transition, type HeldEvent, type HeldJob, type HeldState, type HeldTransition } from './held-job';
import type { QueuedJob } from '../job-queue';

export interface HeldJobsDeps {
  registry: AgentRegistry;
  /** An agent went from no builds to one. */
  onBusy(agent: ConnectedAgent): void;
  /** An agent's last build ended. */
  onIdle(agent: ConnectedAgent): void;
  /** A held job ended, so an executor or a pending slot may be free. */
  onFreed(): void;
  /**
   * A cancelled build ended other than by its agent's report (which brings its result and is
   * recorded where it arrives): its agent declined it, disconnected, was lost or preempted.
   */
  onCancelEnded?(h: HeldJob, last: Extract<HeldState, { kind: 'cancelling' }>): void;
}

type Mutable = { -readonly [K in keyof HeldJob]: HeldJob[K] };

/**
 * The jobs this master holds, and the only place their state changes: `apply` runs the
 * transition and keeps the agents' running sets in step with who owns what.
 */
export class HeldJobs {
  private readonly byKey = new Map<string, HeldJob>();
  /** The pending ones per job type, oldest first: read on every freed executor, so not a scan of all held jobs. */
  private readonly pendingByQueue = new Map<string, Set<HeldJob>>();

  constructor(private readonly d: HeldJobsDeps) {}

  /** Starts holding a job taken (`take`) or taken back (`adopt`); undefined if the event refuses it or it is held already. */
  hold(
    o: { queue: string; job: QueuedJob; payload: JobPayload; attempt: number; timeoutSec: number },
    event: Extract<HeldEvent, { type: 'take' | 'adopt' }>,
  ): HeldJob | undefined {
    const key = buildKey(o.queue, o.job.id);
    const t = transition(this.byKey.get(key)?.state, event);
    if (!t.ok || t.next.kind === 'settled') return undefined;
    const h: HeldJob = { ...o, key, state: t.next, writes: Promise.resolve() };
    this.byKey.set(key, h);
    this.trackPending(h);
    const placed = placedOf(t.next);
    if (placed) this.d.registry.assign(placed.owner.connId, key);
    return h;
  }

  get(queue: string, jobId: string): HeldJob | undefined {
    return this.byKey.get(buildKey(queue, jobId));
  }

  list(): HeldJob[] {
    return [...this.byKey.values()];
  }

  /** Jobs waiting for an executor, in the order they became pending. */
  pending(queue: string): HeldJob[] {
    return [...(this.pendingByQueue.get(queue) ?? [])];
  }

  pendingCount(queue: string): number {
    return this.pendingByQueue.get(queue)?.size ?? 0;
  }

  private trackPending(h: HeldJob): void {
    const held = this.byKey.get(h.key) === h;
    let set = this.pendingByQueue.get(h.queue);
    if (held && h.state.kind === 'pending') {
      if (!set) this.pendingByQueue.set(h.queue, (set = new Set()));
      set.add(h);
    } else if (set?.delete(h) && set.size === 0) this.pendingByQueue.delete(h.queue);
  }

  ownedBy(connId: string): HeldJob[] {
    return this.list().filter((h) => placedOf(h.state)?.owner.connId === connId);
  }

  onInstance(instanceId: string): HeldJob[] {
    return this.list().filter((h) => placedOf(h.state)?.build.instanceId === instanceId);
  }

  /** Applies `event`; on refusal nothing changes. A settled job is forgotten. */
  apply(h: HeldJob, event: HeldEvent): HeldTransition {
    if (this.byKey.get(h.key) !== h) return { ok: false, code: 'wrong-state', reason: 'job is no longer held' };
    const t = transition(h.state, event);
    if (!t.ok) return t;
    const before = placedOf(h.state)?.owner.connId;
    const after = placedOf(t.next)?.owner.connId;
    if (t.next.kind === 'settled') this.byKey.delete(h.key);
    else (h as Mutable).state = t.next;
    this.trackPending(h);
    if (before !== undefined && before !== after) {
      const idle = this.d.registry.unassign(before, h.key);
      if (idle) this.d.onIdle(idle);
    }
    if (after !== undefined && after !== before) {
      const busy = this.d.registry.assign(after, h.key);
      // A reattached build was running all along: only a new placement makes an agent busy.
      const agent = this.d.registry.get(after);
      if (busy && event.type === 'place' && agent) this.d.onBusy(agent);
    }
    // The state before settling: a settled job keeps its last one.
    if (t.next.kind === 'settled' && h.state.kind === 'cancelling' && event.type !== 'finish') this.d.onCancelEnded?.(h, h.state);
    // A job handed back or parked frees nothing: that happens while capacity is being recounted.
    if (t.next.kind === 'settled' && t.next.how !== 'given-back' && t.next.how !== 'parked') this.d.onFreed();
    return t;
  }
}
