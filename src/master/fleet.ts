import type { Notice } from '../protocol';
import type { Fleet } from '../provisioner';
import { freeExecutors, type AgentRegistry, type ConnectedAgent } from './agent-registry';

/** What the fleet needs of the dispatcher: the builds it holds per instance. */
export interface HeldBuilds {
  /** An agent's draining flag changed: place pending jobs again. */
  capacityChanged(): void;
  noticeInstance(instanceId: string, notice: Notice): boolean;
  preemptInstance(instanceId: string, reason: string): Promise<void>;
}

/** The provisioner's view of the agents connected to this master. */
export class RegistryFleet implements Fleet {
  constructor(
    private readonly registry: AgentRegistry,
    private readonly builds: HeldBuilds,
    /** Where a failed requeue of preempted builds is reported. */
    private readonly onError: (err: unknown) => void,
  ) {}

  idleOnprem(type: string): number {
    let n = 0;
    for (const a of this.registry.list()) if (a.location === 'onprem' && a.jobTypes.has(type)) n += freeExecutors(a);
    return n;
  }

  idleOn(instanceIds: ReadonlySet<string>): number {
    let n = 0;
    for (const a of this.registry.list()) if (a.instanceId && instanceIds.has(a.instanceId)) n += freeExecutors(a);
    return n;
  }

  busyWith(type: string, instanceIds: ReadonlySet<string>): number {
    const prefix = `${type}/`;
    let n = 0;
    for (const a of this.registry.list()) {
      if (!a.instanceId || !instanceIds.has(a.instanceId)) continue;
      for (const key of a.running) if (key.startsWith(prefix)) n++;
    }
    return n;
  }

  runningOn(instanceId: string): number | undefined {
    return this.byInstance(instanceId)?.running.size;
  }

  agentOn(instanceId: string): string | undefined {
    return this.byInstance(instanceId)?.name;
  }

  setDraining(instanceId: string, draining: boolean): boolean {
    const a = this.byInstance(instanceId);
    if (!a) return false;
    this.registry.setDraining(a, draining);
    this.builds.capacityChanged();
    return true;
  }

  notice(instanceId: string, notice: Notice): boolean {
    return this.builds.noticeInstance(instanceId, notice);
  }

  preempt(instanceId: string, reason: string): void {
    this.builds.preemptInstance(instanceId, reason).catch(this.onError);
  }

  disconnect(instanceId: string, reason: string): void {
    const a = this.byInstance(instanceId);
    if (!a) return;
    // Forgotten at once: a hibernating agent never completes the close handshake, and its
    // silence must not be taken for a lost agent.
    this.registry.remove(a);
    a.close(1000, reason);
  }

  private byInstance(instanceId: string): ConnectedAgent | undefined {
    return this.registry.list().find((a) => a.instanceId === instanceId);
  }
}
