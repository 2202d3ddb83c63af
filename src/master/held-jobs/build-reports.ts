import type { Clock, Logger, RefusalLog } from '../../lib';
import type { FinishedFrame, HeldJob as AgentHeldJob } from '../../protocol';
import type { ConnectedAgent } from '../agent-registry';
import type { BuildRecords } from '../build-store';
import type { BuildSettlement } from '../build-settlement';
import type { Cancellation } from './cancellation';
import type { TakenJob } from '../job-queue';
import type { DispatcherEvents, DispatchEmitter } from '../dispatcher-events';
import { agentKeyOf, placedOf, RefusedFrame, type HeldEvent, type HeldJob, type Reporter } from './held-job';
import type { HeldJobs } from './held-jobs';

/**
 * Where a finished build's settle may take the next job for the executor it frees (one round
 * trip for both): `reserve` says whether to, and if so keeps that executor for it; `taken`
 * ends the reservation with what came, for that agent only (it knows the next job's lock).
 */
export interface NextTake {
  reserve(agent: ConnectedAgent, queue: string): boolean;
  taken(agent: ConnectedAgent, queue: string, next: TakenJob | undefined): void;
}

export interface BuildReportsDeps {
  jobs: HeldJobs;
  /** Without it every settle is followed by a separate take. */
  next?: NextTake;
  builds: BuildRecords;
  settlement: BuildSettlement;
  cancellation: Pick<Cancellation, 'ended'>;
  events: DispatchEmitter;
  /** Where refused frames are logged, once per agent and window. */
  refusals: RefusalLog;
  clock: Clock;
  log: Logger;
}

type FrameKind = DispatcherEvents['frame-refused'][1];

/**
 * Where an agent's frames about a job (started, log, finished) are accepted: each is checked
 * by the held job's state machine (`transition`), which lets only the job's holder report.
 * Everything else is refused: counted (`frame-refused`) and logged once per agent.
 */
export class BuildReports {
  constructor(private readonly d: BuildReportsDeps) {}

  onStarted(agent: ConnectedAgent, f: AgentHeldJob & { startedAt: number }): void {
    const h = this.accept(agent, 'started', f.queue, f.jobId, () => ({ type: 'start', by: reporter(agent, f.lockToken), at: f.startedAt }));
    if (!h) return;
    this.d.log.debug('job.started', { queue: h.queue, jobId: f.jobId, attempt: h.attempt, agent: agent.name });
    const build = placedOf(h.state)!.build;
    h.writes = h.writes
      .then(() => this.d.builds.started(build, f.startedAt))
      .catch((err: unknown) => this.d.log.error('redis.error', { op: 'build.started', jobId: f.jobId, error: err }));
  }

  /** Stores build output; output that carries its offset is confirmed to the agent once stored. */
  /** The held job back to pending if its holder declines it; the job, or undefined if refused. */
  onDeclined(agent: ConnectedAgent, f: AgentHeldJob & { reason: string }): HeldJob | undefined {
    const h = this.accept(agent, 'declined', f.queue, f.jobId, () => ({ type: 'decline', by: reporter(agent, f.lockToken) }));
    if (h) this.d.log.info('job.declined', { queue: h.queue, jobId: f.jobId, attempt: h.attempt, agent: agent.name, reason: f.reason });
    return h;
  }

  /** Resolves once this frame's output is stored (the listener's ingest budget waits for it). */
  onLog(agent: ConnectedAgent, queue: string, jobId: string, data: string, offset: number | undefined): Promise<void> | undefined {
    // Log frames carry no token: the connection is what vouches for them.
    const h = this.accept(agent, 'log', queue, jobId, (held) => ({ type: 'log', by: reporter(agent, held.state.lock) }));
    if (!h) return undefined;
    // Emitted once stored, so a follower woken by it reads the new output.
    const at = this.d.clock.now();
    h.writes = h.writes
      .then(() => this.d.builds.appendLog(queue, jobId, h.attempt, data, offset, at))
      .then((stored) => {
        if (offset !== undefined) agent.send({ type: 'log-ack', queue, jobId, offset: stored });
        this.d.events.emit('build-log', queue, jobId, h.attempt, data);
      })
      .catch((err: unknown) => this.d.log.error('redis.error', { op: 'build.log', jobId, error: err }));
    return h.writes;
  }

  /**
   * Records a finished build. The queue checks the lock token too, so a result from an agent
   * whose job was meanwhile given to another agent can never complete the job a second time.
   */
  async onFinished(agent: ConnectedAgent, f: FinishedFrame): Promise<void> {
    const h = this.d.jobs.get(f.queue, f.jobId);
    try {
      if (h) {
        const before = h.state;
        const placed = placedOf(before);
        if (!this.accept(agent, 'finished', f.queue, f.jobId, () => ({ type: 'finish', by: reporter(agent, f.lockToken) }))) return;
        // Killed after a cancel (or done just before it): the job failed as cancelled already.
        if (before.kind === 'cancelling') return void (await this.d.cancellation.ended(h, before, f.result));
        const takeNext = this.d.next?.reserve(agent, f.queue) ?? false;
        let next: TakenJob | undefined;
        try {
          await h.writes;
          next = await this.d.settlement.settle(f.queue, h.job.id, f.lockToken, f.result, h.timeoutSec, takeNext);
        } finally {
          if (takeNext) this.d.next!.taken(agent, f.queue, next);
        }
        this.d.events.emit('build-finished', await this.d.settlement.record(placed!.build, f.result));
      } else {
        this.d.events.emit('build-finished', await this.d.settlement.settleUnheld(agent, f));
      }
      this.d.events.emit('job-settled', f.queue, f.jobId);
    } catch (err) {
      if (err instanceof RefusedFrame) this.refused(agent, 'finished', f.queue, f.jobId, err);
      else this.d.log.warn('job.stale-result', { queue: f.queue, jobId: f.jobId, agent: agent.name, reason: (err as Error).message });
    } finally {
      agent.send({ type: 'ack', queue: f.queue, jobId: f.jobId });
    }
  }

  /** Counts and logs a frame the rules refuse. */
  refused(agent: ConnectedAgent, frame: FrameKind, queue: string, jobId: string, why: RefusedFrame): void {
    this.d.events.emit('frame-refused', agent, frame, why.code);
    this.d.refusals.warnAgent('job.frame-refused', agent.name, { address: agent.address, frame, queue, jobId, code: why.code, reason: why.message });
  }

  /** Applies the frame's event to the job it names; the job if accepted, else counted as refused. */
  private accept(agent: ConnectedAgent, frame: FrameKind, queue: string, jobId: string, event: (h: HeldJob) => HeldEvent): HeldJob | undefined {
    const h = this.d.jobs.get(queue, jobId);
    if (!h) {
      this.refused(agent, frame, queue, jobId, new RefusedFrame('not-held', 'no such job is held by this master'));
      return undefined;
    }
    const t = this.d.jobs.apply(h, event(h));
    if (t.ok) return h;
    this.refused(agent, frame, queue, jobId, new RefusedFrame(t.code, t.reason));
    return undefined;
  }
}

export const reporter = (agent: ConnectedAgent, token: string): Reporter => ({ connId: agent.id, agentKey: agentKeyOf(agent), token });
