import { EventEmitter } from 'node:events';
import type { HelloFrame, MasterFrame, Notice } from '../protocol';
import { FreeExecutorIndex } from './free-executor-index';
import { DEFAULT_PLACEMENT, type Location, type PlacementPolicy } from './placement-policy';

export type { Location };

/** The filesystem an agent is short on, as it reported it. */
export interface DiskShortage {
  path: string;
  freeMb: number;
  minFreeMb: number;
}

/** A connected, authenticated agent as the master sees it; changed only through the `AgentRegistry`. */
export interface ConnectedAgent {
  /** Unique per connection: a reconnect of the same name is a new id. */
  readonly id: string;
  readonly name: string;
  readonly location: Location;
  readonly jobTypes: ReadonlySet<string>;
  readonly executors: number;
  readonly os: string;
  readonly arch: string;
  readonly cpus: number;
  readonly memoryMb: number;
  readonly labels: ReadonlySet<string>;
  readonly instanceId: string | undefined;
  readonly version: string;
  readonly address: string;
  /** The pool whose token the agent presented; undefined for a default token. */
  readonly pool: string | undefined;
  readonly connectedAt: number;
  /** Job types it announced that this master does not know (it never gets jobs of them). */
  readonly unknownJobTypes: readonly string[];
  readonly lastSeen: number;
  /**
   * Set while the listener does not read the connection (its ingest budget is spent): the
   * agent's silence is then the master's doing, so it is not lost for it.
   */
  readonly readsPaused?: boolean;
  readonly draining: boolean;
  /** Set while the agent reports too little free disk: it gets no builds until space is back. */
  readonly diskFull: DiskShortage | undefined;
  /** A spot notice for its machine: draining for good, its builds preempted if it vanishes. */
  readonly notice: Notice | undefined;
  /** Build keys (`queue/jobId`) this agent is running. */
  readonly running: ReadonlySet<string>;
  /**
   * When the agent was last used, as a registry-wide sequence number (unique per agent): bumped
   * when it is given a build, frees an executor or comes (back) to work. Placement ties go by it.
   */
  readonly usedSeq: number;
  send(frame: MasterFrame): void;
  /** Ends the connection; the registry forgets the agent through `remove`. */
  close(code: number, reason: string): void;
  /** Whether the agent answers on this connection within `timeoutMs` (a websocket ping). */
  alive(timeoutMs: number): Promise<boolean>;
}

type MutableAgent = { -readonly [K in keyof ConnectedAgent]: ConnectedAgent[K] } & { running: Set<string> };

export function agentFromHello(
  hello: HelloFrame,
  conn: {
    id: string;
    address: string;
    pool: string | undefined;
    now: number;
    send: (f: MasterFrame) => void;
    close: (code: number, reason: string) => void;
    alive?: (timeoutMs: number) => Promise<boolean>;
    unknownJobTypes?: readonly string[];
  },
): ConnectedAgent {
  const agent: MutableAgent = {
    id: conn.id,
    name: hello.name,
    location: hello.location,
    jobTypes: new Set(hello.jobTypes),
    executors: hello.executors,
    os: hello.os,
    arch: hello.arch,
    cpus: hello.cpus,
    memoryMb: hello.memoryMb,
    labels: new Set(hello.labels),
    instanceId: hello.instanceId,
    version: hello.version,
    address: conn.address,
    pool: conn.pool,
    connectedAt: conn.now,
    unknownJobTypes: conn.unknownJobTypes ?? [],
    lastSeen: conn.now,
    draining: hello.draining,
    // The details follow in a `disk` frame right after the welcome.
    diskFull: hello.diskFull ? { path: '', freeMb: 0, minFreeMb: 0 } : undefined,
    notice: undefined,
    running: new Set(),
    usedSeq: 0,
    send: conn.send,
    close: conn.close,
    alive: conn.alive ?? (async () => false),
  };
  return agent;
}

/** Whether the agent takes new builds at all now (not draining, not short of disk). */
export const takesWork = (a: ConnectedAgent): boolean => !a.draining && a.diskFull === undefined;

export const freeExecutors = (a: ConnectedAgent): number => (takesWork(a) ? a.executors - a.running.size : 0);

export interface AgentRegistryEvents {
  added: [ConnectedAgent];
  removed: [ConnectedAgent];
}

/**
 * The agents connected to this master, by connection id and by name, and their free executors
 * per job type in placement order (see `PlacementPolicy`).
 */
export class AgentRegistry extends EventEmitter<AgentRegistryEvents> {
  private readonly byId = new Map<string, ConnectedAgent>();
  private readonly byName = new Map<string, ConnectedAgent>();
  private readonly free: FreeExecutorIndex<ConnectedAgent>;
  private seq = 0;

  /** @param policy How free executors are ordered per location. @defaultValue DEFAULT_PLACEMENT (on-prem spread, cloud packed) */
  constructor(readonly policy: PlacementPolicy = DEFAULT_PLACEMENT) {
    super();
    this.free = new FreeExecutorIndex(policy);
  }

  /**
   * Agents that said hello and are taking their running builds back: those builds count on
   * them already, but nothing is dispatched to them until `add`.
   */
  private readonly joiningById = new Map<string, ConnectedAgent>();

  joining(agent: ConnectedAgent): void {
    this.joiningById.set(agent.id, agent);
  }

  add(agent: ConnectedAgent): void {
    this.joiningById.delete(agent.id);
    this.byId.set(agent.id, agent);
    this.byName.set(agent.name, agent);
    this.reindex(agent);
    this.emit('added', agent);
  }

  /** Forgets the agent; returns false if it was already gone (or replaced by a newer connection). */
  remove(agent: ConnectedAgent): boolean {
    this.joiningById.delete(agent.id);
    if (this.byId.get(agent.id) !== agent) return false;
    this.byId.delete(agent.id);
    this.free.delete(agent);
    if (this.byName.get(agent.name) === agent) this.byName.delete(agent.name);
    this.emit('removed', agent);
    return true;
  }

  /** A frame arrived from the agent: it is alive. */
  seen(agent: ConnectedAgent, at: number): void {
    (agent as MutableAgent).lastSeen = at;
  }

  /** The listener stopped or resumed reading the agent's connection; resuming counts as seen. */
  setReadsPaused(agent: ConnectedAgent, paused: boolean, at: number): void {
    (agent as MutableAgent).readsPaused = paused;
    if (!paused) (agent as MutableAgent).lastSeen = at;
  }

  setDraining(agent: ConnectedAgent, draining: boolean): void {
    (agent as MutableAgent).draining = draining;
    this.reindex(agent);
  }

  setDiskFull(agent: ConnectedAgent, shortage: DiskShortage | undefined): void {
    (agent as MutableAgent).diskFull = shortage;
    this.reindex(agent);
  }

  /**
   * A spot notice for the agent's machine: it drains for good. Returns whether this is news
   * (an interruption notice is final, a later rebalance recommendation changes nothing).
   */
  setNotice(agent: ConnectedAgent, notice: Notice): boolean {
    const a = agent as MutableAgent;
    a.draining = true;
    this.reindex(a);
    if (a.notice === notice || a.notice === 'spot-interruption') return false;
    a.notice = notice;
    return true;
  }

  /** Counts a build on the agent of connection `id`; true if the agent just became busy. */
  assign(id: string, key: string): boolean {
    const a = (this.byId.get(id) ?? this.joiningById.get(id)) as MutableAgent | undefined;
    if (!a || a.running.has(key)) return false;
    a.running.add(key);
    this.reindex(a);
    return a.running.size === 1;
  }

  /** Forgets a build of the agent of connection `id`; the agent if it just became idle. */
  unassign(id: string, key: string): ConnectedAgent | undefined {
    const a = (this.byId.get(id) ?? this.joiningById.get(id)) as MutableAgent | undefined;
    if (!a?.running.delete(key)) return undefined;
    this.reindex(a);
    return a.running.size === 0 ? a : undefined;
  }

  get(id: string): ConnectedAgent | undefined {
    return this.byId.get(id);
  }

  byAgentName(name: string): ConnectedAgent | undefined {
    return this.byName.get(name);
  }

  list(): ConnectedAgent[] {
    return [...this.byId.values()];
  }

  /** Executors free for this job type now, and whether any agent that is not draining serves it. O(1). */
  capacityFor(queue: string): { free: number; serving: boolean } {
    return this.free.capacityFor(queue);
  }

  /**
   * The agents serving `queue` with a free executor, best first by the placement policy; the
   * first that meets a job's requirements is the one `chooseAgent` would pick from `list()`.
   */
  candidates(queue: string): Iterable<ConnectedAgent> {
    return this.free.candidates(queue);
  }

  /** Keeps the free-executor index in step; only registered agents (not joining ones) are in it. */
  private reindex(agent: ConnectedAgent): void {
    if (this.byId.get(agent.id) !== agent) return;
    const now = { takes: takesWork(agent), free: freeExecutors(agent) };
    if (!this.free.changed(agent, now)) return;
    (agent as MutableAgent).usedSeq = ++this.seq;
    this.free.put(agent, now);
  }

  get size(): number {
    return this.byId.size;
  }
}
