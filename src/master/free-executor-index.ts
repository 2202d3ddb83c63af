import type { ConnectedAgent, Location } from './agent-registry';
import { OrderedSet } from './ordered-set';
import type { PlacementOrder, PlacementPolicy } from './placement-policy';

/** The agents of one job type and location that have a free executor, in one placement order. */
interface PlacementQueue {
  insert(agent: ConnectedAgent): void;
  delete(agent: ConnectedAgent): void;
  /** Best first, as `comparePlacement` orders them. */
  inOrder(): Iterable<ConnectedAgent>;
}

/** Least recently used first: agents are (re)inserted at the back when their `usedSeq` is bumped. */
class SpreadQueue implements PlacementQueue {
  private readonly agents = new OrderedSet<ConnectedAgent>();
  insert(agent: ConnectedAgent): void {
    this.agents.pushBack(agent);
  }
  delete(agent: ConnectedAgent): void {
    this.agents.delete(agent);
  }
  inOrder(): Iterable<ConnectedAgent> {
    return this.agents.fromFront();
  }
}

/**
 * Busiest first, then most recently used: one bucket per running-build count. The buckets in
 * use are few (at most one per executor count), so ordering them costs nothing next to the
 * number of agents.
 */
class PackQueue implements PlacementQueue {
  private readonly buckets = new Map<number, OrderedSet<ConnectedAgent>>();
  private readonly bucketOf = new Map<ConnectedAgent, number>();
  insert(agent: ConnectedAgent): void {
    this.delete(agent);
    const n = agent.running.size;
    let b = this.buckets.get(n);
    if (!b) this.buckets.set(n, (b = new OrderedSet()));
    b.pushBack(agent);
    this.bucketOf.set(agent, n);
  }
  delete(agent: ConnectedAgent): void {
    const n = this.bucketOf.get(agent);
    if (n === undefined) return;
    this.bucketOf.delete(agent);
    const b = this.buckets.get(n)!;
    b.delete(agent);
    if (b.size === 0) this.buckets.delete(n);
  }
  *inOrder(): Iterable<ConnectedAgent> {
    for (const n of [...this.buckets.keys()].sort((x, y) => y - x)) yield* this.buckets.get(n)!.fromBack();
  }
}

const queueFor = (order: PlacementOrder): PlacementQueue => (order === 'pack' ? new PackQueue() : new SpreadQueue());

interface TypeIndex {
  onprem: PlacementQueue;
  cloud: PlacementQueue;
  /** Free executors of agents serving the type that take work. */
  free: number;
  /** Agents serving the type that take work (not draining, not short of disk). */
  serving: number;
}

/** What an agent contributed when it was last indexed. */
interface Entry {
  takes: boolean;
  free: number;
  running: number;
}

/**
 * The free executors per job type, kept in placement order as agents change, so choosing an
 * agent for a job costs O(1) for a job without requirements (the first candidate fits) instead
 * of a scan and sort of every connected agent; the capacity per type is a counter.
 */
export class FreeExecutorIndex {
  private readonly types = new Map<string, TypeIndex>();
  private readonly entries = new Map<ConnectedAgent, Entry>();

  constructor(private readonly policy: PlacementPolicy) {}

  /**
   * The agent's state as dispatch sees it now. Returns whether it changed since the last call
   * (the registry then bumps the agent's `usedSeq` first: see `PlacementOrder`).
   */
  changed(agent: ConnectedAgent, now: { takes: boolean; free: number }): boolean {
    const e = this.entries.get(agent);
    return !e || e.takes !== now.takes || e.free !== now.free || e.running !== agent.running.size;
  }

  put(agent: ConnectedAgent, now: { takes: boolean; free: number }): void {
    this.delete(agent);
    this.entries.set(agent, { takes: now.takes, free: now.free, running: agent.running.size });
    for (const type of agent.jobTypes) {
      const t = this.type(type);
      t.free += now.free;
      if (now.takes) t.serving++;
      if (now.free > 0) t[agent.location].insert(agent);
    }
  }

  delete(agent: ConnectedAgent): void {
    const e = this.entries.get(agent);
    if (!e) return;
    this.entries.delete(agent);
    for (const type of agent.jobTypes) {
      const t = this.type(type);
      t.free -= e.free;
      if (e.takes) t.serving--;
      t[agent.location].delete(agent);
    }
  }

  /** Agents serving `queue` with a free executor, best first (on-prem before cloud). */
  *candidates(queue: string): IterableIterator<ConnectedAgent> {
    const t = this.types.get(queue);
    if (!t || t.free <= 0) return;
    for (const loc of ['onprem', 'cloud'] as const satisfies readonly Location[]) yield* t[loc].inOrder();
  }

  capacityFor(queue: string): { free: number; serving: boolean } {
    const t = this.types.get(queue);
    return { free: t?.free ?? 0, serving: (t?.serving ?? 0) > 0 };
  }

  private type(name: string): TypeIndex {
    let t = this.types.get(name);
    if (!t) this.types.set(name, (t = { onprem: queueFor(this.policy.onprem), cloud: queueFor(this.policy.cloud), free: 0, serving: 0 }));
    return t;
  }
}
