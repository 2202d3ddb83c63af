import type { Clock, Logger } from '../../lib';
import type { BuildResult } from '../../protocol';
import type { AgentRegistry } from '../agent-registry';
import type { BuildRecord, BuildRecords } from '../build-store';
import { cancelReasonText, type CancelRequest, type CancelStore } from '../cancel-store';
import type { DispatchEmitter } from '../dispatcher-events';
import type { JobQueue } from '../job-queue';
import { lockOf, placedOf, type HeldJob, type HeldState } from './held-job';
import type { HeldJobs } from './held-jobs';

export interface CancellationDeps {
  jobs: HeldJobs;
  queues: ReadonlyMap<string, JobQueue>;
  registry: AgentRegistry;
  builds: BuildRecords;
  /** Where cancel requests are read; without it only announced cancels are seen (tests). */
  requests: Pick<CancelStore, 'get'> | undefined;
  events: DispatchEmitter;
  clock: Clock;
  log: Logger;
}

type Cancelling = Extract<HeldState, { kind: 'cancelling' }>;

/**
 * Cancelling jobs this master holds. The job fails in its queue at once ("cancelled by …",
 * never retried), so it is done for everyone asking; a build on an agent is killed there
 * (the `cancel` frame with `report`), and its executor counts as taken until the agent says
 * the build's processes are gone. Its record then says `cancelled`, and by whom.
 */
export class Cancellation {
  constructor(private readonly d: CancellationDeps) {}

  /** Cancels a job held here; false if it is not (or is being cancelled already). */
  cancel(h: HeldJob, request: CancelRequest): boolean {
    const before = h.state;
    const lock = lockOf(h);
    const t = this.d.jobs.apply(h, { type: 'cancel', request });
    if (!t.ok) return false;
    const reason = cancelReasonText(request);
    const placed = placedOf(before);
    this.d.log.info('job.cancelled', { queue: h.queue, jobId: h.job.id, attempt: h.attempt, was: before.kind, agent: placed?.build.agent, by: request.by, reason: request.reason });
    const q = this.d.queues.get(h.queue);
    h.writes = h.writes
      .then(() => q?.fail(h.job.id, lock, reason, false))
      .then(() => void this.d.events.emit('job-settled', h.queue, h.job.id))
      .catch((err: unknown) => this.d.log.warn('job.lock-lost', { queue: h.queue, jobId: h.job.id, reason: (err as Error).message }));
    if (t.next.kind === 'cancelling') {
      this.d.registry.get(t.next.owner.connId)?.send({ type: 'cancel', queue: h.queue, jobId: h.job.id, reason, report: true });
    } else if (placed) {
      // Orphaned: its agent is away; the record is closed now (the agent drops the build once back).
      void this.ended(h, { ...placed, kind: 'cancelling', lock, cancel: request });
    }
    return true;
  }

  /** Cancels `h` if a cancel request for it is stored: for a job just taken or taken back. */
  async check(h: HeldJob): Promise<void> {
    const request = await this.d.requests?.get(h.queue, h.job.id);
    if (request && this.d.jobs.get(h.queue, h.job.id) === h) this.cancel(h, request);
  }

  /** Checks every job held here: cancel announcements may have been missed (the subscription was down). */
  async checkAll(): Promise<void> {
    await Promise.all(this.d.jobs.list().map((h) => this.check(h)));
  }

  /**
   * A cancelled build ended: killed on its agent (`result`), or its agent went away first. Its
   * record is written after the build's other writes (its log), and announced.
   */
  async ended(h: HeldJob, s: Cancelling, result?: BuildResult): Promise<BuildRecord | undefined> {
    const reason = cancelReasonText(s.cancel);
    const ending = {
      startedAt: result?.startedAt ?? s.startedAt,
      finishedAt: result?.finishedAt ?? this.d.clock.now(),
      result: 'cancelled' as const,
      exitCode: result?.exitCode ?? null,
      signal: result?.signal ?? null,
      reason,
    };
    const written = h.writes.then(() => this.d.builds.finished(s.build, ending));
    h.writes = written.then(
      () => undefined,
      () => undefined,
    );
    try {
      const rec = await written;
      this.d.events.emit('build-finished', rec);
      return rec;
    } catch (err) {
      this.d.log.error('redis.error', { op: 'build.cancelled', jobId: h.job.id, error: err });
      return undefined;
    }
  }
}
