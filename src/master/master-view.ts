import type { Notice } from '../protocol';
import { freeExecutors, type ConnectedAgent } from './agent-registry';
import type { BuildIdentity, BuildRecord, BuildStore } from './build-store';
import type { DispatcherEvents } from './dispatcher-events';
import type { JobControl } from './job-control';
import type { JobService } from './job-service';

/**
 * A connected agent as a reader sees it: a copy, so nothing outside the master can change
 * an agent or talk to it.
 */
export type AgentInfo = Readonly<Omit<ConnectedAgent, 'send' | 'close' | 'alive' | 'running' | 'usedSeq'>> & {
  /** Build keys (`queue/jobId`) it is running. */
  readonly running: ReadonlySet<string>;
  /** Executors it would take a build on now (0 while draining or short of disk). */
  readonly freeExecutors: number;
};

/** A job type's BullMQ counts. */
export interface QueueCounts {
  waiting: number;
  prioritized: number;
  delayed: number;
  active: number;
  completed: number;
  failed: number;
  /** When the oldest job still waiting to be taken was queued; null when none waits. */
  oldestQueuedAt: number | null;
}

/** What a master tells its readers (presentation, the overflow machinery). */
export interface MasterEvents {
  /** A build was handed to an agent (its record exists from here on). */
  'build-dispatched': [build: BuildIdentity];
  'build-finished': [record: BuildRecord];
  'job-settled': [queue: string, jobId: string];
  /** A build's machine went away after a notice; the job was requeued without using an attempt. */
  'build-preempted': [record: BuildRecord];
  'agent-added': [agent: AgentInfo];
  'agent-removed': [agent: AgentInfo];
  /** An agent went silent past `agents.lostAfterSec` and was dropped (also followed by agent-removed). */
  'agent-lost': [agent: AgentInfo];
  /** An agent went from no builds to one (its instance is busy). */
  'agent-busy': [agent: AgentInfo];
  /** An agent's last build ended (its instance's quiet period starts). */
  'agent-idle': [agent: AgentInfo, at: number];
  /** A spot notice reached an agent here (from the agent itself or from SQS). */
  'agent-notice': [agent: AgentInfo, notice: Notice];
  /** A frame about a job came from an agent that does not hold it (or quoted the wrong token). */
  'frame-refused': [agent: AgentInfo, frame: DispatcherEvents['frame-refused'][1], reason: DispatcherEvents['frame-refused'][2]];
}

/** Submitting and looking up jobs. */
export type JobApi = Pick<JobService, 'submit' | 'submitFresh' | 'view' | 'logChunk' | 'logText'>;

/** Cancelling and retrying jobs (submit or admin token). */
export type JobControlApi = Pick<JobControl, 'cancel' | 'retry'>;

/** The build records, newest first. */
export type BuildHistory = Pick<BuildStore, 'recent' | 'page'>;

/**
 * The read side of a master, for src/http and the composition root: what it holds and what
 * happens to it, with no way to reach its internals. Submitting a job is the one write, and
 * it goes through the same checks as any BullMQ producer's job.
 */
export interface MasterView {
  readonly id: string;
  readonly jobTypes: readonly string[];
  readonly jobs: JobApi;
  readonly builds: BuildHistory;
  queueCounts(type: string): Promise<QueueCounts>;
  /** Whether agents can connect, and where (or why not). */
  agentListener(): { ok: boolean; detail: string };
  agents(): AgentInfo[];
  agent(id: string): AgentInfo | undefined;
  /** Builds this master holds that an agent runs: their job type and the agent's connection id. */
  running(): Array<{ queue: string; agentId: string }>;
  /** Jobs of `type` this master took that wait for an executor meeting their requirements. */
  pendingCount(type: string): number;
  /** Jobs of `type` set aside because no agent connected here can run them, and the latest reason. */
  unrunnableOf(type: string): { count: number; reason: string | null };
  on<E extends keyof MasterEvents>(event: E, listener: (...args: MasterEvents[E]) => void): unknown;
  off<E extends keyof MasterEvents>(event: E, listener: (...args: MasterEvents[E]) => void): unknown;
}

export function agentInfo(a: ConnectedAgent): AgentInfo {
  return {
    id: a.id,
    name: a.name,
    location: a.location,
    jobTypes: a.jobTypes,
    unknownJobTypes: a.unknownJobTypes,
    executors: a.executors,
    os: a.os,
    arch: a.arch,
    cpus: a.cpus,
    memoryMb: a.memoryMb,
    labels: a.labels,
    instanceId: a.instanceId,
    version: a.version,
    address: a.address,
    pool: a.pool,
    connectedAt: a.connectedAt,
    lastSeen: a.lastSeen,
    draining: a.draining,
    diskFull: a.diskFull && { ...a.diskFull },
    notice: a.notice,
    running: new Set(a.running),
    freeExecutors: freeExecutors(a),
  };
}
