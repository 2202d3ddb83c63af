import type { Job } from 'bullmq';
import type { JobPayload } from '../protocol';

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
  agentName: string | undefined;
  dispatchedAt: number | null;
  startedAt: number | null;
  /** When its agent's connection dropped; the agent has until then + lostAfter to come back. */
  orphanedAt: number | null;
  /** Log writes in arrival order; a result is recorded only after them, so a finished job's log is complete. */
  logWrites: Promise<void>;
}

export const buildKey = (queue: string, jobId: string): string => `${queue}/${jobId}`;
