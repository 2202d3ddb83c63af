import { describeResult, outcomeOf, type BuildResult, type FinishedFrame } from '../protocol';
import type { Logger } from '../lib';
import type { ConnectedAgent } from './agent-registry';
import type { BuildIdentity, BuildRecord, BuildRecords } from './build-store';
import { isCancelReason } from './cancel-store';
import { attemptOf, lockOf, placedOf, RefusedFrame, type HeldJob } from './held-jobs/held-job';
import type { JobQueue, TakenJob } from './job-queue';

/**
 * Writes the end of a build to its queue (completed or failed, checked against the lock token)
 * and to the build store.
 */
export class BuildSettlement {
  constructor(private readonly d: { queues: ReadonlyMap<string, JobQueue>; builds: BuildRecords; log: Logger }) {}

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
    const q = this.d.queues.get(f.queue);
    const job = await q?.get(f.jobId);
    if (!q || !job) throw new Error('job no longer exists');
    // Read before settling: completing or failing a job counts the attempt as made.
    let attempt = await attemptOf(f.queue, job, this.d.builds);
    let rec = await this.d.builds.get(f.queue, f.jobId, attempt);
    // The lock token alone would do (it is unguessable), but the record says who ran it.
    if (rec && rec.agent !== agent.name) throw new RefusedFrame('not-holder', `job was handed to ${rec.agent}, not to this agent`);
    const timeoutSec = (job.data as { timeoutSec?: number } | null)?.timeoutSec;
    try {
      await this.settle(f.queue, f.jobId, f.lockToken, f.result, timeoutSec);
    } catch (err) {
      // Cancelled while its master was away (or the master that cancelled it died before the
      // agent reported the kill): the job failed as cancelled already; the record says so.
      const end = await q.endOf(f.jobId);
      if (rec?.state === 'running' && end.state === 'failed' && isCancelReason(end.failedReason)) {
        const ending = { startedAt: f.result.startedAt, finishedAt: f.result.finishedAt, result: 'cancelled' as const, exitCode: f.result.exitCode, signal: f.result.signal, reason: end.failedReason };
        return this.d.builds.finished(rec, ending);
      }
      // The previous master may have settled the job and died before writing the build
      // record; the agent's repeated report is then what completes the record.
      if (!(await this.settledWith(q, f.jobId, f.result, timeoutSec))) throw err;
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
  private async settledWith(q: JobQueue, jobId: string, r: BuildResult, timeoutSec: number | undefined): Promise<boolean> {
    const end = await q.endOf(jobId);
    if (end.state === 'completed') {
      const v = end.returnValue as Partial<BuildResult> | null;
      return v?.startedAt === r.startedAt && v?.finishedAt === r.finishedAt;
    }
    return end.state === 'failed' && end.failedReason === describeResult(r, timeoutSec);
  }

  /**
   * A build whose agent vanished: failed with `reason`, which the queue retries (on another
   * agent) while the job's attempts last. Returns its record and whether the job failed for
   * good; a lock lost meanwhile (the job was taken back) leaves the job alone.
   */
  async lost(h: HeldJob, reason: string, now: number): Promise<{ record: BuildRecord | undefined; failed: boolean }> {
    let failed = false;
    const build = placedOf(h.state)?.build;
    try {
      const { retried, attemptsMade } = await this.queue(h).fail(h.job.id, lockOf(h), reason, true);
      this.d.log.warn(retried ? 'job.retried' : 'job.failed', {
        queue: h.queue,
        jobId: h.job.id,
        attempt: h.attempt,
        agent: build?.agent,
        instanceId: build?.instanceId,
        reason,
        attemptsMade,
        attempts: h.job.attempts,
      });
      failed = !retried;
    } catch (err) {
      this.d.log.warn('job.lock-lost', { queue: h.queue, jobId: h.job.id, reason: (err as Error).message });
    }
    return { record: await this.ended(h, 'lost', reason, now), failed };
  }

  /**
   * A build ended by its machine going away after a spot notice: the job goes back to the head
   * of its queue, which checks the lock token and leaves attemptsMade alone. The token check
   * makes the requeue happen once however often it is asked for (only the lock holder can move
   * the job), and no attempt is consumed. The job's preemption count is raised first, so that
   * whichever master takes it next numbers its build after this one; a requeue that fails
   * takes the count back.
   */
  async preempted(h: HeldJob, reason: string, now: number): Promise<BuildRecord | undefined> {
    const build = placedOf(h.state)?.build;
    const fields = { queue: h.queue, jobId: h.job.id, attempt: h.attempt, agent: build?.agent, instanceId: build?.instanceId, reason };
    await this.d.builds.countPreemption(h.queue, h.job.id, 1);
    try {
      await this.queue(h).giveBack(h.job.id, lockOf(h));
    } catch (err) {
      await this.d.builds.countPreemption(h.queue, h.job.id, -1);
      this.d.log.warn('job.lock-lost', { ...fields, reason: (err as Error).message });
      return undefined;
    }
    this.d.log.warn('job.preempted', { ...fields, attemptsMade: h.job.attemptsMade, attempts: h.job.attempts });
    return this.ended(h, 'preempted', reason, now);
  }

  private async ended(h: HeldJob, result: 'lost' | 'preempted', reason: string, now: number): Promise<BuildRecord | undefined> {
    const placed = placedOf(h.state);
    if (!placed) return undefined;
    const ending = { startedAt: placed.startedAt, finishedAt: now, result, exitCode: null, signal: null, reason };
    return this.d.builds.finished(placed.build, ending).catch(() => undefined);
  }

  /**
   * Settles the job with the build's result. With `takeNext` a successful build's settle also
   * takes the next job of the queue, locked with the same token (see `JobQueue.completeAndTake`):
   * it is returned for the agent that sent this result, and for no other.
   */
  async settle(queue: string, jobId: string, token: string, result: BuildResult, timeoutSec: number | undefined, takeNext = false): Promise<TakenJob | undefined> {
    const q = this.named(queue);
    // BullMQ reads the token "0" as "skip the lock check": from an agent it would settle any
    // active job, whoever holds it. No master issues it.
    if (token === '0') throw new Error('lock token "0" is not one a master issues');
    if (outcomeOf(result) === 'success') {
      const value = { ...result, outcome: 'success' };
      if (takeNext && q.completeAndTake) return q.completeAndTake(jobId, token, value);
      await q.complete(jobId, token, value);
    } else {
      // The build itself failed: retrying on another machine would only fail again.
      await q.fail(jobId, token, describeResult(result, timeoutSec), false);
    }
    return undefined;
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
      ...(r.action?.result && { actionResult: `${r.action.result.hash}/${r.action.result.size}` }),
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

  private queue(h: HeldJob): JobQueue {
    return this.named(h.queue);
  }

  private named(type: string): JobQueue {
    const q = this.d.queues.get(type);
    if (!q) throw new Error(`no queue for job type ${type}`);
    return q;
  }
}
