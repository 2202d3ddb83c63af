import { EventEmitter } from 'node:events';
import type { Config } from '../config';
import { RefusalLog, runEvery, Signal, type Clock, type Logger } from '../lib';
import { checkJobPayload, type FinishedFrame, type HeldJob as AgentHeldJob, type Notice } from '../protocol';
import { AgentSweep } from './held-jobs/agent-sweep';
import { freeExecutors, type AgentRegistry, type ConnectedAgent } from './agent-registry';
import { BuildReports } from './held-jobs/build-reports';
import { Cancellation } from './held-jobs/cancellation';
import type { BuildRecords } from './build-store';
import { BuildSettlement } from './build-settlement';
import type { CancelRequest, CancelStore } from './cancel-store';
import type { DispatcherEvents } from './dispatcher-events';
import { firstFitting } from './executor-choice';
import { agentKeyOf, attemptOf, diskDefault, identityOf, lockOf, timeoutOf, type HeldJob } from './held-jobs/held-job';
import { HeldJobs } from './held-jobs/held-jobs';
import type { JobQueue, QueuedJob, TakenJob } from './job-queue';
import { LockRenewal } from './held-jobs/lock-renewal';
import { Preemption } from './held-jobs/preemption';
import { Reattach } from './held-jobs/reattach';
import { UnrunnableJobs } from './held-jobs/unrunnable-jobs';

export type { DispatcherEvents } from './dispatcher-events';

/** Fetched jobs waiting for an executor that meets their requirements, per job type. */
const MAX_PENDING_PER_TYPE = 16;
/**
 * Jobs taken ahead of a free executor, per job type: the next build is then handed out as
 * soon as an executor frees, not one Redis round trip later. Kept at one so a master never
 * sits on work another master's idle agents could take.
 */
const PREFETCH = 1;
/**
 * Takes in flight per job type while jobs keep coming (one while the queue is drained): each
 * take is a Redis round trip, and one at a time capped a farm of a thousand free executors at
 * one job per round trip. BullMQ blocks only one of them; the others return at once.
 */
const MAX_TAKES_IN_FLIGHT = 8;

export interface DispatcherDeps {
  config: Config;
  queues: ReadonlyMap<string, JobQueue>;
  registry: AgentRegistry;
  builds: BuildRecords;
  /** Where cancel requests are read (see `cancel`); without it only `cancel` calls cancel. */
  cancels?: Pick<CancelStore, 'get'>;
  clock: Clock;
  log: Logger;
}

/**
 * Moves jobs from the job types' queues to agents' executors: feed (take a job when an
 * executor may be free), accept (validate it and start holding it) and place (choose the agent
 * and send it). What happens to a job after that lives with its part: `BuildReports` (the
 * agent's frames), `Reattach`, `AgentSweep`, `Preemption`, `LockRenewal`, all changing the job
 * only through `HeldJobs`. The dispatcher is their one front for the agent server and the fleet.
 */
export class Dispatcher extends EventEmitter<DispatcherEvents> {
  private readonly jobs: HeldJobs;
  private readonly reports: BuildReports;
  private readonly reattacher: Reattach;
  private readonly preemption: Preemption;
  private readonly sweeper: AgentSweep;
  private readonly renewal: LockRenewal;
  private readonly unrunnable: UnrunnableJobs;
  private readonly cancellation: Cancellation;
  private readonly capacity = new Signal();
  private readonly abort = new AbortController();
  private loops: Promise<void>[] = [];
  /** Executors freed by a finished build whose settle is taking their next job, per type (see `reserveNext`). */
  private readonly reserved = new Map<string, number>();
  private readonly log: Logger;

  constructor(private readonly d: DispatcherDeps) {
    super();
    this.log = d.log;
    const { registry, clock, log } = d;
    this.jobs = new HeldJobs({
      registry,
      onBusy: (a) => this.emit('agent-busy', a),
      onIdle: (a) => this.emit('agent-idle', a, clock.now()),
      onFreed: () => this.capacityChanged(),
      onCancelEnded: (h, last) => void this.cancellation.ended(h, last),
    });
    const settlement = new BuildSettlement({ queues: d.queues, builds: d.builds, log });
    const common = { jobs: this.jobs, settlement, events: this, clock, log };
    this.cancellation = new Cancellation({ jobs: this.jobs, queues: d.queues, registry, builds: d.builds, requests: d.cancels, events: this, clock, log });
    const next = { reserve: (a: ConnectedAgent, q: string) => this.reserveNext(a, q), taken: (a: ConnectedAgent, q: string, n: TakenJob | undefined) => this.nextTaken(a, q, n) };
    this.reports = new BuildReports({ ...common, builds: d.builds, cancellation: this.cancellation, refusals: new RefusalLog(log, clock), next });
    this.reattacher = new Reattach({ ...common, config: d.config, queues: d.queues, builds: d.builds, reports: this.reports });
    this.preemption = new Preemption({ ...common, registry, capacityChanged: () => this.capacityChanged() });
    this.sweeper = new AgentSweep({ ...common, config: d.config, registry, preemption: this.preemption });
    this.renewal = new LockRenewal({ queues: d.queues, jobs: this.jobs, registry, log });
    this.unrunnable = new UnrunnableJobs({ config: d.config, queues: d.queues, jobs: this.jobs, registry, events: this, clock, log });
    registry.on('added', () => this.unrunnable.agentsChanged());
  }

  start(): void {
    for (const q of this.d.queues.values()) this.loops.push(this.feedLoop(q));
    const loop = { clock: this.d.clock, signal: this.abort.signal, log: this.log, errorEvent: 'queue.error' as const };
    this.loops.push(runEvery('renew-locks', this.d.config.builds.lockMs / 2, () => this.renewal.run(), loop));
    this.loops.push(runEvery('sweep-agents', Math.min(1000, this.d.config.agents.heartbeatSec * 1000), () => this.sweeper.run(), loop));
  }

  /** Stops taking jobs and gives back the ones no agent runs yet; running builds keep their locks for a successor. */
  async stop(): Promise<void> {
    this.abort.abort();
    this.capacity.notify();
    await Promise.all([...this.d.queues.values()].map((q) => q.stopTaking()));
    await Promise.allSettled(this.loops);
    for (const q of this.d.queues.values()) {
      for (const h of this.jobs.pending(q.type)) {
        this.jobs.apply(h, { type: 'give-back' });
        await q.giveBack(h.job.id, lockOf(h)).catch(() => undefined);
      }
    }
    await Promise.all([...this.d.queues.values()].map((q) => q.close()));
  }

  /** Wakes the fetch loops and places pending jobs: an executor became free or an agent arrived. */
  capacityChanged(): void {
    for (const queue of this.d.queues.keys()) {
      const waiting = this.jobs.pending(queue).filter((h) => !this.place(h) && !this.unrunnable.sideline(h));
      if (waiting.length && !this.d.registry.capacityFor(queue).serving) for (const h of waiting) this.giveBack(h);
    }
    this.capacity.notify();
  }

  /**
   * Returns a taken job to its queue when no agent here will serve its type any more (the last
   * one left or is draining): there it counts as backlog and any master's agents can take it.
   */
  private giveBack(h: HeldJob): void {
    if (!this.jobs.apply(h, { type: 'give-back' }).ok) return;
    this.d.queues
      .get(h.queue)
      ?.giveBack(h.job.id, lockOf(h))
      .catch((err: unknown) => this.log.warn('job.lock-lost', { queue: h.queue, jobId: h.job.id, reason: (err as Error).message }));
  }

  /** Jobs taken but not yet on an agent, per type (they count as active in BullMQ). */
  pendingCount(queue: string): number {
    return this.jobs.pendingCount(queue);
  }

  private async feedLoop(q: JobQueue): Promise<void> {
    const signal = this.abort.signal;
    const inflight = new Set<Promise<void>>();
    // Grows while takes return jobs; back to one when the queue is drained, so an empty queue
    // costs one blocked take, not a spin of takes that return nothing.
    let parallel = 1;
    while (!signal.aborted) {
      const { free, serving } = this.d.registry.capacityFor(q.type);
      const room = Math.min(MAX_PENDING_PER_TYPE, free - (this.reserved.get(q.type) ?? 0) + PREFETCH) - this.pendingCount(q.type) - inflight.size;
      if (!serving || room <= 0 || inflight.size >= parallel) {
        await Promise.race([this.capacity.wait(), ...inflight]);
        continue;
      }
      const p: Promise<void> = this.takeOne(q).then((got) => {
        inflight.delete(p);
        parallel = got ? Math.min(MAX_TAKES_IN_FLIGHT, parallel + 1) : 1;
      });
      inflight.add(p);
    }
    await Promise.allSettled(inflight);
  }

  /** Takes one job and accepts it; whether a job came. */
  private async takeOne(q: JobQueue): Promise<boolean> {
    const signal = this.abort.signal;
    let taken: TakenJob | undefined;
    try {
      taken = await q.take();
    } catch (err) {
      if (signal.aborted) return false;
      this.log.error('queue.error', { queue: q.type, error: err });
      await this.d.clock.sleep(1000, signal).catch(() => undefined);
      return false;
    }
    if (!taken) return false;
    const { job, token } = taken;
    await this.accept(q, job, token).catch((err: unknown) => {
      this.log.error('queue.error', { queue: q.type, jobId: job.id, error: err });
      return q.giveBack(job.id, token).catch(() => undefined);
    });
    return true;
  }

  /**
   * Whether the settle of a build that just finished on `agent` should also take the next job
   * for the executor it frees: when no job waits here for an executor (those go first, and one
   * may have just taken it) and the agent still has a free one. The executor is then left out
   * of the feed loop's count until the settle answers, so the two do not both take a job for it.
   */
  private reserveNext(agent: ConnectedAgent, queue: string): boolean {
    const q = this.d.queues.get(queue);
    if (this.abort.signal.aborted || !q?.completeAndTake || this.jobs.pendingCount(queue) > 0) return false;
    if (this.d.registry.get(agent.id) !== agent || freeExecutors(agent) <= 0 || !agent.jobTypes.has(queue)) return false;
    this.reserved.set(queue, (this.reserved.get(queue) ?? 0) + 1);
    return true;
  }

  /** The reserved executor's settle answered, with the next job (locked with a token `agent` knows) or none. */
  private nextTaken(agent: ConnectedAgent, queue: string, next: TakenJob | undefined): void {
    const left = (this.reserved.get(queue) ?? 1) - 1;
    if (left > 0) this.reserved.set(queue, left);
    else this.reserved.delete(queue);
    const q = this.d.queues.get(queue);
    if (next && q) {
      void this.accept(q, next.job, next.token, agent).catch((err: unknown) => {
        this.log.error('queue.error', { queue, jobId: next.job.id, error: err });
        return q.giveBack(next.job.id, next.token).catch(() => undefined);
      });
    }
    this.capacity.notify();
  }

  /**
   * `only`: the job came with the settle of a build of that agent, locked with the token that
   * agent was given; it goes there or back to its queue, never to another agent or to wait here.
   */
  private async accept(q: JobQueue, job: QueuedJob, token: string, only?: ConnectedAgent): Promise<void> {
    const check = checkJobPayload(job.data, q.type);
    if (!check.ok) {
      this.log.warn('job.invalid', { queue: q.type, jobId: job.id, reason: check.reason });
      q.fail(job.id, token, check.reason, false)
        .then(() => this.emit('job-settled', q.type, job.id))
        .catch((err: unknown) => this.log.error('queue.error', { queue: q.type, jobId: job.id, error: err }));
      return;
    }
    const attempt = await attemptOf(q.type, job, this.d.builds);
    const timeoutSec = timeoutOf(this.d.config, q.type, check.payload.timeoutSec);
    const h = this.jobs.hold({ queue: q.type, job, payload: check.payload, attempt, timeoutSec }, { type: 'take', lock: token });
    if (!h) throw new Error('job is held already');
    this.unrunnable.taken(q.type, job.id);
    // Not awaited: placing waits for no Redis round trip. A cancel whose request this read
    // misses is announced after it, when the job is held here already (see `cancel`).
    void this.cancellation.check(h).catch((err: unknown) => this.log.error('redis.error', { op: 'cancel.check', jobId: job.id, error: err }));
    // Not sidelined when it does not fit: held here, it could later go to another agent with a
    // lock token `only` knows. Given back, it is taken again with a fresh one.
    if (only) {
      if (!this.place(h, undefined, only)) this.giveBack(h);
      return;
    }
    if (this.place(h) || this.unrunnable.sideline(h)) return;
    if (!this.d.registry.capacityFor(q.type).serving) this.giveBack(h);
  }

  /** `not` is the agent that just declined it: never straight back there, whatever the master thinks of it. */
  private place(h: HeldJob, not?: ConnectedAgent, only?: ConnectedAgent): boolean {
    const { registry } = this.d;
    const candidates = only ? (registry.get(only.id) === only && freeExecutors(only) > 0 ? [only] : []) : registry.candidates(h.queue);
    const choice = firstFitting(candidates, h.payload.requirements, registry.policy, not);
    if (!choice.agent) return false;
    const agent = choice.agent;
    const build = identityOf(h, agent, this.d.clock.now());
    if (!this.jobs.apply(h, { type: 'place', owner: { connId: agent.id, agentKey: agentKeyOf(agent) }, build }).ok) return false;
    agent.send({
      type: 'assign',
      queue: h.queue,
      jobId: h.job.id,
      lockToken: lockOf(h),
      attempt: h.attempt,
      payload: h.payload,
      timeoutSec: h.timeoutSec,
      ...diskDefault(this.d.config, h.queue, h.payload),
    });
    this.emit('build-dispatched', build);
    this.log.info('job.dispatched', {
      queue: h.queue,
      jobId: h.job.id,
      attempt: h.attempt,
      agent: agent.name,
      location: agent.location,
      instanceId: agent.instanceId,
      reason: choice.reason,
    });
    return true;
  }

  onStarted(agent: ConnectedAgent, f: AgentHeldJob & { startedAt: number }): void {
    this.reports.onStarted(agent, f);
  }

  /**
   * The agent will not run a job placed on it: placed on another agent at once, else it waits
   * for the next change of capacity, or goes back to its queue when nobody here serves its type.
   */
  onDeclined(agent: ConnectedAgent, f: AgentHeldJob & { reason: string }): void {
    const h = this.reports.onDeclined(agent, f);
    // A cancelled job's decline ended it.
    if (!h || this.jobs.get(h.queue, h.job.id) !== h || this.place(h, agent) || this.unrunnable.sideline(h)) return;
    if (!this.d.registry.capacityFor(h.queue).serving) this.giveBack(h);
  }

  onLog(agent: ConnectedAgent, queue: string, jobId: string, data: string, offset?: number): Promise<void> | undefined {
    return this.reports.onLog(agent, queue, jobId, data, offset);
  }

  onFinished(agent: ConnectedAgent, f: FinishedFrame): Promise<void> {
    return this.reports.onFinished(agent, f);
  }

  async reattach(agent: ConnectedAgent, running: readonly AgentHeldJob[], finished: readonly AgentHeldJob[] = []): Promise<Array<{ queue: string; jobId: string }>> {
    const kept = await this.reattacher.reattach(agent, running, finished);
    // A build taken back may have been cancelled while nobody held it (its master restarted).
    for (const k of kept) {
      const h = this.jobs.get(k.queue, k.jobId);
      if (h) void this.cancellation.check(h).catch((err: unknown) => this.log.error('redis.error', { op: 'cancel.check', jobId: k.jobId, error: err }));
    }
    return kept;
  }

  /**
   * Cancels a job if this master holds it: waiting for an executor, it ends at once; on an
   * agent, the build is killed there. False if it is not held here (or is being cancelled).
   *
   * Why no job is both cancelled and run, or lost: the API stores the request first, then
   * fails the job in its queue if no master holds it — atomically with BullMQ's take — and
   * otherwise announces it to every master. A master reads the request right after taking a
   * job; a request stored after that read is announced after it, so it reaches a master that
   * holds the job by then. A master that missed announcements (its subscription dropped)
   * checks every job it holds once it is subscribed again (`cancelsMissed`).
   */
  cancel(queue: string, jobId: string, request: CancelRequest): boolean {
    const h = this.jobs.get(queue, jobId);
    return h !== undefined && this.cancellation.cancel(h, request);
  }

  /** Cancel announcements may have been missed: every held job is checked against the stored requests. */
  cancelsMissed(): Promise<void> {
    return this.cancellation.checkAll();
  }

  /** What a job held here is doing, for the cancel's answer; undefined if it is not held here. */
  heldState(queue: string, jobId: string): 'waiting' | 'running' | undefined {
    const s = this.jobs.get(queue, jobId)?.state.kind;
    if (s === undefined) return undefined;
    return s === 'pending' ? 'waiting' : 'running';
  }

  orphan(agent: ConnectedAgent): void {
    this.reattacher.orphan(agent);
  }

  notice(agent: ConnectedAgent, notice: Notice, details: Record<string, unknown> = {}): void {
    this.preemption.notice(agent, notice, details);
  }

  noticeInstance(instanceId: string, notice: Notice): boolean {
    return this.preemption.noticeInstance(instanceId, notice);
  }

  preemptInstance(instanceId: string, reason: string): Promise<void> {
    return this.preemption.preemptInstance(instanceId, reason);
  }

  /** Jobs of a type put aside because no agent here can run them: how many, and why (the latest). */
  unrunnableOf(queue: string): { count: number; reason: string | null } {
    return this.unrunnable.of(queue);
  }

  /** Why a job with this payload cannot run on any agent connected here ("no agent offers label gpu"); null if it can. */
  unrunnableReason(queue: string, data: unknown): string | null {
    const check = checkJobPayload(data, queue);
    return check.ok ? this.unrunnable.reasonFor(queue, check.payload.requirements) : null;
  }

  /** The jobs held here, for status pages. */
  heldJobs(): ReadonlyArray<Readonly<HeldJob>> {
    return this.jobs.list();
  }
}

