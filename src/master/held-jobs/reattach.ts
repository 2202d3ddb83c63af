import type { Config } from '../../config';
import type { Clock, Logger } from '../../lib';
import { checkJobPayload, type HeldJob as AgentHeldJob } from '../../protocol';
import type { ConnectedAgent } from '../agent-registry';
import type { BuildRecords } from '../build-store';
import type { BuildSettlement } from '../build-settlement';
import { reporter, type BuildReports } from './build-reports';
import { agentKeyOf, attemptOf, buildKey, identityOf, placedOf, RefusedFrame, timeoutOf } from './held-job';
import type { HeldJobs } from './held-jobs';
import type { JobQueue } from '../job-queue';

export interface ReattachDeps {
  config: Config;
  queues: ReadonlyMap<string, JobQueue>;
  jobs: HeldJobs;
  builds: BuildRecords;
  settlement: BuildSettlement;
  reports: Pick<BuildReports, 'refused'>;
  clock: Clock;
  log: Logger;
}

/** An agent's connection going away and the same agent coming back with its builds. */
export class Reattach {
  constructor(private readonly d: ReattachDeps) {}

  /** The agent's connection is gone: its builds wait `lostAfterSec` for it to come back. */
  orphan(agent: ConnectedAgent): void {
    const at = this.d.clock.now();
    for (const h of this.d.jobs.ownedBy(agent.id)) this.d.jobs.apply(h, { type: 'disconnect', connId: agent.id, at });
  }

  /**
   * A (re)connecting agent reports the builds it still runs. Those whose lock this master holds
   * for this agent, or can renew with the agent's token, continue; the agent cancels the rest.
   * `finished` builds (whose output the agent still has to resend) are taken back the same way,
   * so their output is accepted before their result; those not taken back are left to the
   * caller, which settles them as unheld.
   */
  async reattach(
    agent: ConnectedAgent,
    running: readonly AgentHeldJob[],
    finished: readonly AgentHeldJob[] = [],
  ): Promise<Array<{ queue: string; jobId: string }>> {
    const kept: Array<{ queue: string; jobId: string }> = [];
    for (const r of [...running, ...finished]) {
      const h = this.d.jobs.get(r.queue, r.jobId);
      if (!h) {
        if (await this.takeBack(agent, r)) kept.push({ queue: r.queue, jobId: r.jobId });
        continue;
      }
      const build = identityOf(h, agent, placedOf(h.state)?.build.dispatchedAt ?? this.d.clock.now());
      const t = this.d.jobs.apply(h, { type: 'reattach', by: reporter(agent, r.lockToken), build });
      if (t.ok) kept.push({ queue: r.queue, jobId: r.jobId });
      else this.d.reports.refused(agent, 'reattach', r.queue, r.jobId, new RefusedFrame(t.code, t.reason));
    }
    if (kept.length) this.d.log.info('agent.reattached', { agent: agent.name, jobs: kept.map((k) => buildKey(k.queue, k.jobId)) });
    for (const r of running) {
      if (kept.some((k) => k.queue === r.queue && k.jobId === r.jobId)) continue;
      await this.d.settlement.closeAbandoned(r.queue, r.jobId, agent.name, this.d.jobs.get(r.queue, r.jobId)?.attempt, this.d.clock.now());
    }
    return kept;
  }

  /**
   * A job an agent reports running while this master holds nothing for it (its master was
   * restarted): taken back with the agent's lock token if the queue still honours it.
   */
  private async takeBack(agent: ConnectedAgent, r: AgentHeldJob): Promise<boolean> {
    const q = this.d.queues.get(r.queue);
    if (!q) return false;
    const lost = await q.renew([{ jobId: r.jobId, token: r.lockToken }]).catch(() => [r.jobId]);
    if (lost.length > 0) return false;
    const job = await q.get(r.jobId);
    const check = job && checkJobPayload(job.data, r.queue);
    if (!job || !check || !check.ok) return false;
    const o = {
      queue: r.queue,
      job,
      payload: check.payload,
      attempt: await attemptOf(r.queue, job, this.d.builds),
      timeoutSec: timeoutOf(this.d.config, r.queue, check.payload.timeoutSec),
    };
    const rec = await this.d.builds.get(r.queue, r.jobId, o.attempt);
    if (rec && rec.agent !== agent.name) {
      this.d.reports.refused(agent, 'reattach', r.queue, r.jobId, new RefusedFrame('not-holder', `job was handed to ${rec.agent}, not to this agent`));
      return false;
    }
    const startedAt = job.processedOn ?? null;
    const build = identityOf(o, agent, startedAt ?? this.d.clock.now());
    const owner = { connId: agent.id, agentKey: agentKeyOf(agent) };
    return this.d.jobs.hold(o, { type: 'adopt', lock: r.lockToken, owner, build, startedAt }) !== undefined;
  }
}
