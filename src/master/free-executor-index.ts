import { OrderedSet } from './ordered-set';
import type { Location, Placeable, PlacementOrder, PlacementPolicy } from './placement-policy';

/** What the index reads of an agent (a `A` is one). */
type Indexed = Placeable & { readonly jobTypes: ReadonlySet<string> };

/** The agents of one job type and location that have a free executor, in one placement order. */
interface PlacementQueue<A> {
  insert(agent: A): void;
  delete(agent: A): void;
  /** Best first, as `comparePlacement` orders them. */
  inOrder(): Iterable<A>;
}

/** Least recently used first: agents are (re)inserted at the back when their `usedSeq` is bumped. */
class SpreadQueue<A> implements PlacementQueue<A> {
  private readonly agents = new OrderedSet<A>();
  insert(agent: A): void {
    this.agents.pushBack(agent);
  }
  delete(agent: A): void {
    this.agents.delete(agent);
  }
  inOrder(): Iterable<A> {
    return this.agents.fromFront();
  }
}

/**
 * Busiest first, then most recently used: one bucket per running-build count. The buckets in
 * use are few (at most one per executor count), so ordering them costs nothing next to the
 * number of agents.
 */
class PackQueue<A extends Indexed> implements PlacementQueue<A> {
  private readonly buckets = new Map<number, OrderedSet<A>>();
  private readonly bucketOf = new Map<A, number>();
  insert(agent: A): void {
    this.delete(agent);
    const n = agent.running.size;
    let b = this.buckets.get(n);
    if (!b) this.buckets.set(n, (b = new OrderedSet()));
    b.pushBack(agent);
    this.bucketOf.set(agent, n);
  }
  delete(agent: A): void {
    const n = this.bucketOf.get(agent);
    if (n === undefined) return;
    this.bucketOf.delete(agent);
    const b = this.buckets.get(n)!;
    b.delete(agent);
    if (b.size === 0) this.buckets.delete(n);
  }
  *inOrder(): Iterable<A> {
    for (const n of [...this.buckets.keys()].sort((x, y) => y - x)) yield* this.buckets.get(n)!.fromBack();
  }
}

const queueFor = <A extends Indexed>(order: PlacementOrder): PlacementQueue<A> => (order === 'pack' ? new PackQueue<A>() : new SpreadQueue<A>());

interface TypeIndex<A> {
  onprem: PlacementQueue<A>;
  cloud: PlacementQueue<A>;
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
export class FreeExecutorIndex<A extends Indexed> {
  private readonly types = new Map<string, TypeIndex<A>>();
  private readonly entries = new Map<A, Entry>();

  constructor(private readonly policy: PlacementPolicy) {}

  /**
   * The agent's state as dispatch sees it now. Returns whether it changed since the last call
   * (the registry then bumps the agent's `usedSeq` first: see `PlacementOrder`).
   */
  changed(agent: A, now: { takes: boolean; free: number }): boolean {
    const e = this.entries.get(agent);
    return !e || e.takes !== now.takes || e.free !== now.free || e.running !== agent.running.size;
  }

  put(agent: A, now: { takes: boolean; free: number }): void {
    this.delete(agent);
    this.entries.set(agent, { takes: now.takes, free: now.free, running: agent.running.size });
    for (const type of agent.jobTypes) {
      const t = this.type(type);
      t.free += now.free;
      if (now.takes) t.serving++;
      if (now.free > 0) t[agent.location].insert(agent);
    }
  }

  delete(agent: A): void {
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
  *candidates(queue: string): IterableIterator<A> {
    const t = this.types.get(queue);
    if (!t || t.free <= 0) return;
    for (const loc of ['onprem', 'cloud'] as const satisfies readonly Location[]) yield* t[loc].inOrder();
  }

  capacityFor(queue: string): { free: number; serving: boolean } {
    const t = this.types.get(queue);
    return { free: t?.free ?? 0, serving: (t?.serving ?? 0) > 0 };
  }

  private type(name: string): TypeIndex<A> {
    let t = this.types.get(name);
    if (!t) this.types.set(name, (t = { onprem: queueFor<A>(this.policy.onprem), cloud: queueFor<A>(this.policy.cloud), free: 0, serving: 0 }));
    return t;
  }
}
