import { EventEmitter } from 'node:events';
import type { HelloFrame, MasterFrame, Notice } from '../protocol';

export type Location = 'onprem' | 'cloud';

/** A connected, authenticated agent as the master sees it. */
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
  lastSeen: number;
  draining: boolean;
  /** A spot notice for its machine: draining for good, its builds preempted if it vanishes. */
  notice: Notice | undefined;
  /** Build keys (`queue/jobId`) this agent is running. */
  readonly running: Set<string>;
  send(frame: MasterFrame): void;
  /** Ends the connection; the registry forgets the agent through `remove`. */
  close(code: number, reason: string): void;
}

export function agentFromHello(
  hello: HelloFrame,
  conn: { id: string; address: string; pool: string | undefined; now: number; send: (f: MasterFrame) => void; close: (code: number, reason: string) => void },
): ConnectedAgent {
  return {
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
    lastSeen: conn.now,
    draining: hello.draining,
    notice: undefined,
    running: new Set(),
    send: conn.send,
    close: conn.close,
  };
}

export const freeExecutors = (a: ConnectedAgent): number => (a.draining ? 0 : a.executors - a.running.size);

export interface AgentRegistryEvents {
  added: [ConnectedAgent];
  removed: [ConnectedAgent];
}

/** The agents connected to this master, by connection id and by name. */
export class AgentRegistry extends EventEmitter<AgentRegistryEvents> {
  private readonly byId = new Map<string, ConnectedAgent>();
  private readonly byName = new Map<string, ConnectedAgent>();

  add(agent: ConnectedAgent): void {
    this.byId.set(agent.id, agent);
    this.byName.set(agent.name, agent);
    this.emit('added', agent);
  }

  /** Forgets the agent; returns false if it was already gone (or replaced by a newer connection). */
  remove(agent: ConnectedAgent): boolean {
    if (this.byId.get(agent.id) !== agent) return false;
    this.byId.delete(agent.id);
    if (this.byName.get(agent.name) === agent) this.byName.delete(agent.name);
    this.emit('removed', agent);
    return true;
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

  /** Executors free for this job type now, and whether any agent that is not draining serves it. */
  capacityFor(queue: string): { free: number; serving: boolean } {
    let free = 0;
    let serving = false;
    for (const a of this.byId.values()) {
      if (!a.jobTypes.has(queue) || a.draining) continue;
      serving = true;
      free += freeExecutors(a);
    }
    return { free, serving };
  }

  get size(): number {
    return this.byId.size;
  }
}
