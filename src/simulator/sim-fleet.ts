import { chooseAgent } from '../master';
import type { Fleet } from '../provisioner';

/** The master's view of a connected agent, as its executor choice reads it. */
type ConnectedAgent = Parameters<typeof chooseAgent>[2] extends Iterable<infer A> ? A : never;
export type SimAgent = { -readonly [K in keyof ConnectedAgent]: ConnectedAgent[K] } & { running: Set<string> };

export interface AgentSpec {
  name: string;
  location: 'onprem' | 'cloud';
  jobTypes: readonly string[];
  executors: number;
  labels?: readonly string[];
  os?: string;
  arch?: string;
  cpus?: number;
  memoryMb?: number;
  instanceId?: string;
  pool?: string;
}

const noop = () => undefined;

/**
 * The agents connected to the simulated master. Implements the provisioner's Fleet exactly as
 * the master's RegistryFleet does (free executors, draining, disconnect), and keeps the agents
 * with a free executor apart so placing a job does not scan a 200-agent farm every time.
 */
export class SimFleet implements Fleet {
  private readonly agents = new Map<string, SimAgent>();
  private readonly byInstance = new Map<string, SimAgent>();
  /** Agents that take work and have a free executor. */
  readonly free = new Set<SimAgent>();
  /** Free on-prem executors per job type, kept up to date as agents change (the scalers ask every step). */
  private readonly onpremFree = new Map<string, number>();
  private readonly counted = new Map<SimAgent, number>();
  private seq = 0;
  /** As the master's registry does: an agent whose free executors change becomes the most recently used. */
  private useSeq = 0;

  constructor(
    private readonly now: () => number,
    /** A draining flag changed or an agent left: jobs may be placed differently. */
    private readonly changed: () => void,
  ) {}

  connect(s: AgentSpec): SimAgent {
    const a: SimAgent = {
      id: `conn-${++this.seq}`,
      name: s.name,
      location: s.location,
      jobTypes: new Set(s.jobTypes),
      executors: s.executors,
      os: s.os ?? 'linux',
      arch: s.arch ?? 'x64',
      cpus: s.cpus ?? Number.MAX_SAFE_INTEGER,
      memoryMb: s.memoryMb ?? Number.MAX_SAFE_INTEGER,
      labels: new Set(s.labels ?? []),
      instanceId: s.instanceId,
      version: 'simulated',
      address: '127.0.0.1',
      pool: s.pool,
      connectedAt: this.now(),
      unknownJobTypes: [],
      lastSeen: this.now(),
      draining: false,
      diskFull: undefined,
      notice: undefined,
      running: new Set(),
      usedSeq: 0,
      send: noop,
      close: noop,
      alive: async () => true,
    };
    this.agents.set(a.id, a);
    if (a.instanceId) this.byInstance.set(a.instanceId, a);
    this.refresh(a);
    return a;
  }

  list(): IterableIterator<SimAgent> {
    return this.agents.values();
  }

  startBuild(a: SimAgent, key: string): void {
    a.running.add(key);
    this.refresh(a);
  }

  endBuild(a: SimAgent, key: string): void {
    a.running.delete(key);
    this.refresh(a);
  }

  connected(a: SimAgent): boolean {
    return this.agents.get(a.id) === a;
  }

  private refresh(a: SimAgent): void {
    const takes = this.connected(a) && !a.draining && !a.notice && a.running.size < a.executors;
    a.usedSeq = ++this.useSeq;
    if (takes) this.free.add(a);
    else this.free.delete(a);
    if (a.location !== 'onprem') return;
    const now = takes ? a.executors - a.running.size : 0;
    const delta = now - (this.counted.get(a) ?? 0);
    if (delta === 0) return;
    this.counted.set(a, now);
    for (const t of a.jobTypes) this.onpremFree.set(t, (this.onpremFree.get(t) ?? 0) + delta);
  }

  idleOnprem(type: string): number {
    return this.onpremFree.get(type) ?? 0;
  }

  busyWith(type: string, instanceIds: ReadonlySet<string>): number {
    const prefix = `${type}/`;
    let n = 0;
    for (const id of instanceIds) {
      const a = this.byInstance.get(id);
      if (a) for (const key of a.running) if (key.startsWith(prefix)) n++;
    }
    return n;
  }

  idleOn(instanceIds: ReadonlySet<string>): number {
    let n = 0;
    for (const id of instanceIds) {
      const a = this.byInstance.get(id);
      if (a && this.free.has(a)) n += a.executors - a.running.size;
    }
    return n;
  }

  runningOn(instanceId: string): number | undefined {
    return this.byInstance.get(instanceId)?.running.size;
  }

  agentOn(instanceId: string): string | undefined {
    return this.byInstance.get(instanceId)?.name;
  }

  setDraining(instanceId: string, draining: boolean): boolean {
    const a = this.byInstance.get(instanceId);
    if (!a) return false;
    a.draining = draining;
    this.refresh(a);
    this.changed();
    return true;
  }

  notice(instanceId: string, notice: 'spot-interruption' | 'rebalance'): boolean {
    const a = this.byInstance.get(instanceId);
    if (!a) return false;
    a.notice = notice;
    this.refresh(a);
    return true;
  }

  /** The simulation has no spot interruptions, so nothing is ever preempted. */
  preempt(): void {}

  disconnect(instanceId: string): void {
    const a = this.byInstance.get(instanceId);
    if (!a) return;
    this.agents.delete(a.id);
    this.byInstance.delete(instanceId);
    this.free.delete(a);
    this.changed();
  }
}
