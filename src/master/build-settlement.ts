import { UnrecoverableError, type Job } from 'bullmq';
import { describeResult, outcomeOf, type BuildResult, type FinishedFrame } from '../protocol';
import type { Logger } from '../lib';
import type { ConnectedAgent } from './agent-registry';
import type { BuildIdentity, BuildRecord, BuildStore } from './build-store';
import { attemptOf, type HeldJob } from './held-job';
import type { JobTypeQueue } from './job-type-queue';

/**
 * Writes the end of a build to BullMQ (completed or failed, checked against the lock token)
 * and to the build store.
 */
export class BuildSettlement {
  constructor(private readonly d: { queues: ReadonlyMap<string, JobTypeQueue>; builds: BuildStore; log: Logger }) {}

  /**
   * A build its agent still runs but nobody holds the lock of any more (its master was away
   * longer than the lock): the agent cancels it, and its record must not stay "running".
   * `currentAttempt` is the attempt now held for the job, whose record is left alone.
   */
  async closeAbandoned(queue: string, jobId: string, agentName: string, currentAttempt: number | undefined, now: number): Promise<void> {
    for (const rec of await this.d.builds.attempts(queue, jobId)) {
      if (rec.state !== 'running' || rec.agent !== agentName || rec.attempt === currentAttempt) continue;
      await this.d.builds.finished(rec, {
        finishedAt: now,
        startedAt: rec.startedAt,
        result: 'cancelled',
        exitCode: null,
        signal: null,
        reason: 'cancelled: the job was taken back while its agent was away',
      });
      this.d.log.warn('job.cancelled', { queue, jobId, attempt: rec.attempt, agent: agentName, reason: 'lock expired while the agent was away' });
    }
  }

  /** A build that finished while no master held it (this one was restarted); its lock may still be valid. */
  async settleUnheld(agent: ConnectedAgent, f: FinishedFrame): Promise<BuildRecord> {
    const job = await this.d.queues.get(f.queue)?.getJob(f.jobId);
    if (!job) throw new Error('job no longer exists');
    // Read before settling: completing or failing a job counts the attempt as made.
    let attempt = await attemptOf(f.queue, job, this.d.builds);
    let rec = await this.d.builds.get(f.queue, f.jobId, attempt);
    try {
      await this.settle(job, f.lockToken, f.result, job.data?.timeoutSec);
    } catch (err) {
      // The previous master may have settled the job and died before writing the build
      // record; the agent's repeated report is then what completes the record.
      if (!(await this.settledWith(job, f.result))) throw err;
      attempt = job.attemptsMade + (await this.d.builds.preemptions(f.queue, f.jobId));
      rec = await this.d.builds.get(f.queue, f.jobId, attempt);
      if (rec?.state === 'finished') throw err;
    }
    return this.record(
      {
        id: f.jobId,
        type: f.queue,
        attempt,
        agent: agent.name,
        location: agent.location,
        instanceId: agent.instanceId ?? null,
        queuedAt: job.timestamp,
        dispatchedAt: rec?.dispatchedAt ?? job.processedOn ?? f.result.startedAt,
      },
      f.result,
    );
  }

  /** Whether the job already ended with exactly this result (matched by its timestamps or reason). */
  private async settledWith(job: Job, r: BuildResult): Promise<boolean> {
    const state = await job.getState();
    if (state === 'completed') {
      const v = job.returnvalue as Partial<BuildResult> | null;
      return v?.startedAt === r.startedAt && v?.finishedAt === r.finishedAt;
    }
    return state === 'failed' && job.failedReason === describeResult(r, job.data?.timeoutSec);
  }

  /**
   * A build whose agent vanished: failed with `reason`, which BullMQ retries (on another agent)
   * while the job's attempts last. Returns its record and whether the job failed for good; a
   * lock lost meanwhile (the job was taken back) leaves the job alone.
   */
  async lost(h: HeldJob, reason: string, now: number): Promise<{ record: BuildRecord | undefined; failed: boolean }> {
    let failed = false;
    try {
      await h.job.moveToFailed(new Error(reason), h.token, false);
      const retried = h.job.attemptsMade < (h.job.opts.attempts ?? 1);
      this.d.log.warn(retried ? 'job.retried' : 'job.failed', {
        queue: h.queue,
        jobId: h.job.id,
        attempt: h.attempt,
        agent: h.build?.agent,
        instanceId: h.build?.instanceId,
        reason,
        attemptsMade: h.job.attemptsMade,
        attempts: h.job.opts.attempts ?? 1,
      });
      failed = !retried;
    } catch (err) {
      this.d.log.warn('job.lock-lost', { queue: h.queue, jobId: h.job.id, reason: (err as Error).message });
    }
    return { record: await this.ended(h, 'lost', reason, now), failed };
  }

  /**
   * A build ended by its machine going away after a spot notice: the job goes back to the head
   * of its queue with BullMQ's moveToWait, which checks the lock token and leaves attemptsMade
   * alone. The token check makes the requeue happen once however often it is asked for (only
   * the lock holder can move the job), and no attempt is consumed. The job's preemption count
   * is raised first, so that whichever master takes it next numbers its build after this one;
   * a requeue that fails takes the count back.
   */
  async preempted(h: HeldJob, reason: string, now: number): Promise<BuildRecord | undefined> {
    const fields = { queue: h.queue, jobId: h.job.id, attempt: h.attempt, agent: h.build?.agent, instanceId: h.build?.instanceId, reason };
    await this.d.builds.countPreemption(h.queue, h.job.id!, 1);
    try {
      await h.job.moveToWait(h.token);
    } catch (err) {
      await this.d.builds.countPreemption(h.queue, h.job.id!, -1);
      this.d.log.warn('job.lock-lost', { ...fields, reason: (err as Error).message });
      return undefined;
    }
    this.d.log.warn('job.preempted', { ...fields, attemptsMade: h.job.attemptsMade, attempts: h.job.opts.attempts ?? 1 });
    return this.ended(h, 'preempted', reason, now);
  }

  private async ended(h: HeldJob, result: 'lost' | 'preempted', reason: string, now: number): Promise<BuildRecord | undefined> {
    if (!h.build) return undefined;
    const ending = { startedAt: h.startedAt, finishedAt: now, result, exitCode: null, signal: null, reason };
    return this.d.builds.finished(h.build, ending).catch(() => undefined);
  }

  async settle(job: Job, token: string, result: BuildResult, timeoutSec: number | undefined): Promise<void> {
    // BullMQ reads the token "0" as "skip the lock check": from an agent it would settle any
    // active job, whoever holds it. No master issues it.
    if (token === '0') throw new Error('lock token "0" is not one a master issues');
    if (outcomeOf(result) === 'success') {
      await job.moveToCompleted({ ...result, outcome: 'success' }, token, false);
    } else {
      // The build itself failed: retrying on another machine would only fail again.
      await job.moveToFailed(new UnrecoverableError(describeResult(result, timeoutSec)), token, false);
    }
  }

  async record(build: BuildIdentity, r: BuildResult): Promise<BuildRecord> {
    const outcome = outcomeOf(r);
    const rec = await this.d.builds.finished(build, {
      startedAt: r.startedAt,
      finishedAt: r.finishedAt,
      result: outcome,
      exitCode: r.exitCode,
      signal: r.signal,
      reason: outcome === 'success' ? null : describeResult(r),
    });
    this.d.log.info('job.finished', {
      queue: rec.type,
      jobId: rec.id,
      attempt: rec.attempt,
      agent: rec.agent,
      location: rec.location,
      instanceId: rec.instanceId,
      result: rec.result,
      exitCode: rec.exitCode,
      durationMs: rec.durationMs,
    });
    return rec;
  }
}
