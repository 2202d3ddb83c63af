import type { Logger } from '../../lib';
import type { AgentRegistry } from '../agent-registry';
import { lockOf, placedOf } from './held-job';
import type { HeldJobs } from './held-jobs';
import type { JobQueue } from '../job-queue';

/**
 * Keeps the locks of the jobs this master holds: a build runs on an agent far longer than a
 * lock lasts. A lock that could not be renewed belongs to someone else now: the agent is told
 * to cancel and the job is forgotten here.
 */
export class LockRenewal {
  constructor(private readonly d: { queues: ReadonlyMap<string, JobQueue>; jobs: HeldJobs; registry: AgentRegistry; log: Logger }) {}

  async run(): Promise<void> {
    for (const q of this.d.queues.values()) {
      // A cancelling job failed in its queue already: it has no lock left to renew.
      const mine = this.d.jobs.list().filter((h) => h.queue === q.type && h.state.kind !== 'cancelling');
      const lost = await q.renew(mine.map((h) => ({ jobId: h.job.id, token: lockOf(h) })));
      for (const id of lost) {
        const h = this.d.jobs.get(q.type, id);
        if (!h) continue;
        const placed = placedOf(h.state);
        this.d.log.warn('job.lock-lost', { queue: q.type, jobId: id, agent: placed?.build.agent });
        if (placed) this.d.registry.get(placed.owner.connId)?.send({ type: 'cancel', queue: q.type, jobId: id, reason: 'lock lost: the job was taken back' });
        this.d.jobs.apply(h, { type: 'lock-lost' });
      }
    }
  }
}
