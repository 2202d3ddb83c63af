import type { Notice } from '../../src/protocol';
import type { Fleet } from '../../src/provisioner';

/** An agent connected to "this" master from a cloud instance. */
export interface FakeAgent {
  executors: number;
  running: number;
  draining: boolean;
  notice?: Notice;
  /** Of `running`, the builds per job type (for the types' caps); unnamed builds are of no type. */
  busy?: Record<string, number>;
}

/**
 * The master's agents as plain maps the test edits: `onprem` (free on-prem executors per job
 * type) and `agents` (by instance id; absent = not connected to this master). Every
 * `setDraining` call is recorded; `onSetDraining` lets a test act at that very moment (a build
 * that slipped in).
 */
export class FakeFleet implements Fleet {
  readonly onprem = new Map<string, number>();
  readonly agents = new Map<string, FakeAgent>();
  readonly drainCalls: Array<{ instanceId: string; draining: boolean; connected: boolean }> = [];
  readonly disconnects: Array<{ instanceId: string; reason: string }> = [];
  readonly notices: Array<{ instanceId: string; notice: Notice; connected: boolean }> = [];
  readonly preempts: Array<{ instanceId: string; reason: string }> = [];
  onSetDraining: ((instanceId: string, draining: boolean) => void) | undefined;

  connect(instanceId: string, over: Partial<FakeAgent> = {}): this {
    this.agents.set(instanceId, { executors: 1, running: 0, draining: false, ...over });
    return this;
  }

  idleOnprem(type: string): number {
    return this.onprem.get(type) ?? 0;
  }

  idleOn(instanceIds: ReadonlySet<string>): number {
    let n = 0;
    for (const [id, a] of this.agents) if (instanceIds.has(id) && !a.draining) n += Math.max(0, a.executors - a.running);
    return n;
  }

  busyWith(type: string, instanceIds: ReadonlySet<string>): number {
    let n = 0;
    for (const [id, a] of this.agents) if (instanceIds.has(id)) n += a.busy?.[type] ?? 0;
    return n;
  }

  runningOn(instanceId: string): number | undefined {
    return this.agents.get(instanceId)?.running;
  }

  agentOn(instanceId: string): string | undefined {
    return this.agents.has(instanceId) ? `agent-${instanceId}` : undefined;
  }

  setDraining(instanceId: string, draining: boolean): boolean {
    const a = this.agents.get(instanceId);
    this.drainCalls.push({ instanceId, draining, connected: a !== undefined });
    if (!a) return false;
    a.draining = draining;
    this.onSetDraining?.(instanceId, draining);
    return true;
  }

  /** Closes the agent's connection on purpose: it is no longer connected here. */
  disconnect(instanceId: string, reason: string): void {
    this.disconnects.push({ instanceId, reason });
    this.agents.delete(instanceId);
  }

  notice(instanceId: string, notice: Notice): boolean {
    const a = this.agents.get(instanceId);
    this.notices.push({ instanceId, notice, connected: a !== undefined });
    if (!a) return false;
    a.draining = true;
    a.notice = notice;
    return true;
  }

  /** The machine went down: its builds are gone from here (requeued by the real dispatcher). */
  preempt(instanceId: string, reason: string): void {
    this.preempts.push({ instanceId, reason });
    const a = this.agents.get(instanceId);
    if (a) a.running = 0;
  }
}
