import type { Job } from 'bullmq';
import type { JobPayload } from '../protocol';
import type { ConnectedAgent } from './agent-registry';
import type { BuildIdentity } from './build-store';

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
 * The attempt a build of this job is: BullMQ's failed attempts plus one, so "attempt 2" means
 * the first run failed (e.g. its agent was lost). BullMQ's attemptsStarted would also count a
 * job taken and handed back unrun, or restarted after its master died.
 */
export function attemptOf(job: Job): number {
  return job.attemptsMade + 1;
}
