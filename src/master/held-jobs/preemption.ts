import type { Clock, Logger } from '../../lib';
import type { Notice } from '../../protocol';
import type { AgentRegistry, ConnectedAgent } from '../agent-registry';
import type { BuildSettlement } from '../build-settlement';
import type { DispatchEmitter } from '../dispatcher-events';
import type { HeldJob } from './held-job';
import type { HeldJobs } from './held-jobs';

export interface PreemptionDeps {
  jobs: HeldJobs;
  registry: AgentRegistry;
  settlement: BuildSettlement;
  events: DispatchEmitter;
  /** Capacity changed (an agent drains): place pending jobs elsewhere. */
  capacityChanged(): void;
  clock: Clock;
  log: Logger;
}

/** Spot notices and the machines that go away after one: their builds are requeued, not failed. */
export class Preemption {
  constructor(private readonly d: PreemptionDeps) {}

  /**
   * A spot notice for the machine `agent` runs on: no new builds for it, ever, and its builds,
   * should the machine die under them, are preempted rather than lost. Idempotent.
   */
  notice(agent: ConnectedAgent, notice: Notice, details: Record<string, unknown> = {}): void {
    const news = this.d.registry.setNotice(agent, notice);
    for (const h of this.d.jobs.ownedBy(agent.id)) this.d.jobs.apply(h, { type: 'notice', notice: agent.notice ?? notice });
    if (!news) return;
    this.d.log.warn('agent.notice', { agent: agent.name, instanceId: agent.instanceId, notice, running: agent.running.size, ...details });
    this.d.capacityChanged();
    this.d.events.emit('agent-notice', agent, notice);
  }

  /**
   * The same for a machine by instance id, including builds whose agent has already
   * disconnected and may yet be declared lost. False if no agent of it is connected here.
   */
  noticeInstance(instanceId: string, notice: Notice): boolean {
    for (const h of this.d.jobs.onInstance(instanceId)) this.d.jobs.apply(h, { type: 'notice', notice });
    const agents = this.d.registry.list().filter((a) => a.instanceId === instanceId);
    for (const a of agents) this.notice(a, notice, { source: 'instance-state' });
    return agents.length > 0;
  }

  /** The machine is going down after a notice: its builds held here are requeued as preempted now. */
  async preemptInstance(instanceId: string, reason: string): Promise<void> {
    for (const a of this.d.registry.list().filter((x) => x.instanceId === instanceId)) {
      this.d.registry.remove(a);
      a.close(1000, 'instance going down');
    }
    for (const h of this.d.jobs.onInstance(instanceId)) await this.preempt(h, reason);
  }

  /** Requeues a placed build without using an attempt; a no-op for a job no longer held. */
  async preempt(h: HeldJob, reason: string): Promise<void> {
    // Cancelled already: it ends cancelled, and is not requeued.
    if (h.state.kind === 'cancelling') return void this.d.jobs.apply(h, { type: 'preempt' });
    if (!this.d.jobs.apply(h, { type: 'preempt' }).ok) return;
    const rec = await this.d.settlement.preempted(h, reason, this.d.clock.now());
    if (!rec) return;
    this.d.events.emit('build-preempted', rec);
    this.d.events.emit('build-finished', rec);
  }
}
