import type { Fleet } from '../provisioner';
import { freeExecutors, type AgentRegistry, type ConnectedAgent } from './agent-registry';

/** The provisioner's view of the agents connected to this master. */
export class RegistryFleet implements Fleet {
  constructor(
    private readonly registry: AgentRegistry,
    /** Called when an agent's draining flag changes, so pending jobs are placed again. */
    private readonly onChange: () => void,
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

  runningOn(instanceId: string): number | undefined {
    return this.byInstance(instanceId)?.running.size;
  }

  setDraining(instanceId: string, draining: boolean): boolean {
    const a = this.byInstance(instanceId);
    if (!a) return false;
    a.draining = draining;
    this.onChange();
    return true;
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
