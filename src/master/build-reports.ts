import type { Clock, Logger } from '../lib';
import type { FinishedFrame, HeldJob as AgentHeldJob } from '../protocol';
import type { ConnectedAgent } from './agent-registry';
import type { BuildRecords } from './build-store';
import type { BuildSettlement } from './build-settlement';
import type { DispatchEmitter } from './dispatcher-events';
import { agentKeyOf, placedOf, type Reporter } from './held-job';
import type { HeldJobs } from './held-jobs';

export interface BuildReportsDeps {
  jobs: HeldJobs;
  builds: BuildRecords;
  settlement: BuildSettlement;
  events: DispatchEmitter;
  clock: Clock;
  log: Logger;
}

/**
 * Where an agent's frames about a job (started, log, finished) are accepted: each is checked
 * by the held job's state machine (`transition`), which lets only the job's holder report.
 */
export class BuildReports {
  constructor(private readonly d: BuildReportsDeps) {}

  onStarted(agent: ConnectedAgent, f: AgentHeldJob & { startedAt: number }): void {
    const h = this.d.jobs.get(f.queue, f.jobId);
    if (!h || !this.d.jobs.apply(h, { type: 'start', by: reporter(agent, f.lockToken), at: f.startedAt }).ok) return;
    this.d.log.debug('job.started', { queue: h.queue, jobId: f.jobId, attempt: h.attempt, agent: agent.name });
    const build = placedOf(h.state)!.build;
    h.writes = h.writes
      .then(() => this.d.builds.started(build, f.startedAt))
      .catch((err: unknown) => this.d.log.error('redis.error', { op: 'build.started', jobId: f.jobId, error: err }));
  }

  onLog(agent: ConnectedAgent, queue: string, jobId: string, data: string): void {
    const h = this.d.jobs.get(queue, jobId);
    // Log frames carry no token: the connection is what vouches for them.
    if (!h || !this.d.jobs.apply(h, { type: 'log', by: reporter(agent, h.state.lock) }).ok) return;
    // Emitted once stored, so a follower woken by it reads the new output.
    h.writes = h.writes
      .then(() => this.d.builds.appendLog(queue, jobId, h.attempt, data))
      .then(() => void this.d.events.emit('build-log', queue, jobId, h.attempt, data))
      .catch((err: unknown) => this.d.log.error('redis.error', { op: 'build.log', jobId, error: err }));
  }

  /**
   * Records a finished build. The queue checks the lock token too, so a result from an agent
   * whose job was meanwhile given to another agent can never complete the job a second time.
   */
  async onFinished(agent: ConnectedAgent, f: FinishedFrame): Promise<void> {
    const h = this.d.jobs.get(f.queue, f.jobId);
    try {
      if (h) {
        const placed = placedOf(h.state);
        const t = this.d.jobs.apply(h, { type: 'finish', by: reporter(agent, f.lockToken) });
        if (!t.ok) throw new Error(t.reason);
        await h.writes;
        await this.d.settlement.settle(f.queue, h.job.id, f.lockToken, f.result, h.timeoutSec);
        this.d.events.emit('build-finished', await this.d.settlement.record(placed!.build, f.result));
      } else {
        this.d.events.emit('build-finished', await this.d.settlement.settleUnheld(agent, f));
      }
      this.d.events.emit('job-settled', f.queue, f.jobId);
    } catch (err) {
      this.d.log.warn('job.stale-result', { queue: f.queue, jobId: f.jobId, agent: agent.name, reason: (err as Error).message });
    } finally {
      agent.send({ type: 'ack', queue: f.queue, jobId: f.jobId });
    }
  }
}

export const reporter = (agent: ConnectedAgent, token: string): Reporter => ({ connId: agent.id, agentKey: agentKeyOf(agent), token });
