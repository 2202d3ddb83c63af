import type { Config } from '../../config';
import type { Clock, Logger } from '../../lib';
import type { AgentRegistry } from '../agent-registry';
import type { BuildSettlement } from '../build-settlement';
import type { DispatchEmitter } from '../dispatcher-events';
import { placedOf, type HeldJob } from './held-job';
import type { HeldJobs } from './held-jobs';
import type { Preemption } from './preemption';

export interface AgentSweepDeps {
  config: Config;
  jobs: HeldJobs;
  registry: AgentRegistry;
  settlement: BuildSettlement;
  preemption: Preemption;
  events: DispatchEmitter;
  clock: Clock;
  log: Logger;
}

/** Agents silent past lostAfter are dropped; orphaned builds past their grace are lost. */
export class AgentSweep {
  constructor(private readonly d: AgentSweepDeps) {}

  async run(): Promise<void> {
    const now = this.d.clock.now();
    const lostAfter = this.d.config.agents.lostAfterSec * 1000;
    for (const a of this.d.registry.list()) {
      if (now - a.lastSeen <= lostAfter || a.readsPaused) continue;
      this.d.log.warn('agent.lost', { agent: a.name, silentMs: now - a.lastSeen, running: a.running.size });
      this.d.registry.remove(a);
      a.close(4408, 'lost: no heartbeat');
      this.d.events.emit('agent-lost', a);
      for (const h of this.d.jobs.ownedBy(a.id)) await this.lose(h);
    }
    for (const h of this.d.jobs.list()) {
      if (h.state.kind === 'orphaned' && now - h.state.since > lostAfter) await this.lose(h);
    }
  }

  /**
   * The build of a vanished agent: preempted if its machine had a notice (requeued, no attempt
   * used), otherwise lost (retried while attempts remain, then failed).
   */
  private async lose(h: HeldJob): Promise<void> {
    // Cancelled already: it ends cancelled (HeldJobs' onCancelEnded records it), never retried.
    if (h.state.kind === 'cancelling') return void this.d.jobs.apply(h, { type: 'lose' });
    const notice = placedOf(h.state)?.notice;
    if (notice) return this.d.preemption.preempt(h, `preempted: ${notice} notice, then its agent was lost`);
    if (!this.d.jobs.apply(h, { type: 'lose' }).ok) return;
    const { record, failed } = await this.d.settlement.lost(h, 'agent lost', this.d.clock.now());
    if (failed) this.d.events.emit('job-settled', h.queue, h.job.id);
    if (record) this.d.events.emit('build-finished', record);
  }
}
