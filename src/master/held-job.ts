import type { Job } from 'bullmq';
import { checkJobPayload, type HeldJob as AgentHeldJob, type JobPayload, type Notice } from '../protocol';
import type { ConnectedAgent } from './agent-registry';
import type { BuildIdentity, BuildStore } from './build-store';
import type { JobTypeQueue } from './job-type-queue';

/** A job this master has taken from its queue and holds the BullMQ lock of. */
export interface HeldJob {
  readonly queue: string;
  readonly job: Job;
  readonly token: string;
  readonly payload: JobPayload;
  readonly attempt: number;
  readonly queuedAt: number;
  readonly timeoutSec: number;
  /** Connection id of the agent running it; undefined while it waits for an executor. */
  agentId: string | undefined;
  /** The build record's identity, once handed to an agent. */
  build: BuildIdentity | undefined;
  startedAt: number | null;
  /** When its agent's connection dropped; the agent has until then + lostAfter to come back. */
  orphanedAt: number | null;
  /** This build's Redis writes in arrival order; the result is recorded after them, so its log is complete. */
  writes: Promise<void>;
  /** Its machine got a spot notice: should the agent vanish, the build was preempted, not lost. */
  notice: Notice | null;
}

/** A held job as it starts out: taken (or taken back) with `token`, not yet running unless `agentId` is set. */
export function heldJobOf(
  o: Pick<HeldJob, 'queue' | 'job' | 'token' | 'payload' | 'attempt' | 'timeoutSec'> & { agentId?: string; startedAt?: number | null },
): HeldJob {
  return {
    ...o,
    queuedAt: o.job.timestamp,
    agentId: o.agentId,
    build: undefined,
    startedAt: o.startedAt ?? null,
    orphanedAt: null,
    writes: Promise.resolve(),
    notice: null,
  };
}

export const buildKey = (queue: string, jobId: string): string => `${queue}/${jobId}`;

export function identityOf(h: HeldJob, agent: ConnectedAgent, dispatchedAt: number): BuildIdentity {
  return {
    id: h.job.id!,
    type: h.queue,
    attempt: h.attempt,
    agent: agent.name,
    location: agent.location,
    instanceId: agent.instanceId ?? null,
    queuedAt: h.queuedAt,
    dispatchedAt,
  };
}

/**
 * The attempt a build of this job is: BullMQ's failed attempts plus the job's preempted runs
 * plus one, so "attempt 2" means the first run failed (e.g. its agent was lost) or was
 * preempted; the latter never consumes one of BullMQ's attempts. BullMQ's attemptsStarted alone
 * would also count a job taken and handed back unrun, or restarted after its master died, but
 * it bounds the rest: a job started no more often than its failed attempts explain was never
 * preempted, so the common case reads nothing from Redis.
 */
export async function attemptOf(queue: string, job: Job, builds: Pick<BuildStore, 'preemptions'>): Promise<number> {
  const preempted = job.attemptsStarted > job.attemptsMade + 1 ? await builds.preemptions(queue, job.id!) : 0;
  return job.attemptsMade + 1 + preempted;
}

/**
 * A job an agent reports running while this master holds nothing for it (its master was
 * restarted): taken back with the agent's lock token if BullMQ still honours it.
 */
export async function takeBack(
  q: JobTypeQueue,
  r: AgentHeldJob,
  agentId: string,
  builds: Pick<BuildStore, 'preemptions'>,
  timeoutOf: (fromPayload: number | undefined) => number,
): Promise<HeldJob | undefined> {
  const lost = await q.renew([{ jobId: r.jobId, token: r.lockToken }]).catch(() => [r.jobId]);
  if (lost.length > 0) return undefined;
  const job = await q.getJob(r.jobId);
  const check = job && checkJobPayload(job.data, r.queue);
  if (!job || !check || !check.ok) return undefined;
  return heldJobOf({
    queue: r.queue,
    job,
    token: r.lockToken,
    payload: check.payload,
    attempt: await attemptOf(r.queue, job, builds),
    timeoutSec: timeoutOf(check.payload.timeoutSec),
    agentId,
    startedAt: job.processedOn ?? null,
  });
}
