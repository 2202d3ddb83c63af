import { EventEmitter } from 'node:events';
import { UnrecoverableError, type Job } from 'bullmq';
import type { Config } from '../config';
import { runEvery, type Clock, type Logger } from '../lib';
import {
  checkJobPayload,
  type FinishedFrame,
  type HeldJob as AgentHeldJob,
  type Notice,
} from '../protocol';
import type { AgentRegistry, ConnectedAgent } from './agent-registry';
import type { BuildIdentity, BuildRecord, BuildStore } from './build-store';
import { BuildSettlement } from './build-settlement';
import { chooseAgent } from './executor-choice';
import { attemptOf, buildKey, heldJobOf, identityOf, takeBack, type HeldJob } from './held-job';
import type { JobTypeQueue } from './job-type-queue';
import { Signal } from './signal';

/** Fetched jobs waiting for an executor that meets their requirements, per job type. */
const MAX_PENDING_PER_TYPE = 16;
/**
 * Jobs taken ahead of a free executor, per job type: the next build is then handed out as
 * soon as an executor frees, not one Redis round trip later. Kept at one so a master never
 * sits on work another master's idle agents could take.
 */
const PREFETCH = 1;

export interface DispatcherEvents {
  'build-log': [queue: string, jobId: string, attempt: number, data: string];
  /** A build was handed to an agent (its record exists from here on). */
  'build-dispatched': [build: BuildIdentity];
  'build-finished': [record: BuildRecord];
  'job-settled': [queue: string, jobId: string];
  /** An agent went from no builds to one (its instance is busy). */
  'agent-busy': [agent: ConnectedAgent];
  /** An agent's last build ended (its instance's quiet period starts). */
  'agent-idle': [agent: ConnectedAgent, at: number];
  /** A spot notice reached an agent here (from the agent itself or from SQS). */
  'agent-notice': [agent: ConnectedAgent, notice: Notice];
  /** A build's machine went away after a notice; the job was requeued without using an attempt. */
  'build-preempted': [record: BuildRecord];
}

export interface DispatcherDeps {
  config: Config;
  queues: ReadonlyMap<string, JobTypeQueue>;
  registry: AgentRegistry;
  builds: BuildStore;
  clock: Clock;
  log: Logger;
}

/**
 * Moves jobs from the job types' queues to agents' executors and results back. Owns the jobs
 * this master holds: their locks, their agent, what happens when the agent goes away.
 */
export class Dispatcher extends EventEmitter<DispatcherEvents> {
  private readonly held = new Map<string, HeldJob>();
  private readonly pending = new Map<string, HeldJob[]>();
  private readonly capacity = new Signal();
  private readonly abort = new AbortController();
  private loops: Promise<void>[] = [];
  private readonly log: Logger;

  private readonly settlement: BuildSettlement;

  constructor(private readonly d: DispatcherDeps) {
    super();
    this.log = d.log;
    this.settlement = new BuildSettlement({ queues: d.queues, builds: d.builds, log: d.log });
    for (const t of d.queues.keys()) this.pending.set(t, []);
  }

  start(): void {
    for (const q of this.d.queues.values()) this.loops.push(this.feedLoop(q));
    const loop = { clock: this.d.clock, signal: this.abort.signal, log: this.log, errorEvent: 'queue.error' as const };
    this.loops.push(runEvery('renew-locks', this.d.config.builds.lockMs / 2, () => this.renewLocks(), loop));
    this.loops.push(runEvery('sweep-agents', Math.min(1000, this.d.config.agents.heartbeatSec * 1000), () => this.sweep(), loop));
  }

  /** Stops taking jobs and gives back the ones no agent runs yet; running builds keep their locks for a successor. */
  async stop(): Promise<void> {
    this.abort.abort();
    this.capacity.notify();
    await Promise.all([...this.d.queues.values()].map((q) => q.stopTaking()));
    await Promise.allSettled(this.loops);
    for (const list of this.pending.values()) {
      for (const h of list.splice(0)) {
        this.held.delete(buildKey(h.queue, h.job.id!));
        await this.d.queues.get(h.queue)?.giveBack(h.job.id!, h.token).catch(() => undefined);
      }
    }
    await Promise.all([...this.d.queues.values()].map((q) => q.close()));
  }

  /** Wakes the fetch loops and places pending jobs: an executor became free or an agent arrived. */
  capacityChanged(): void {
    for (const [queue, list] of this.pending) {
      for (let i = 0; i < list.length; ) {
        if (this.place(list[i]!)) list.splice(i, 1);
        else i++;
      }
      if (list.length && !this.d.registry.capacityFor(queue).serving) for (const h of list.splice(0)) this.giveBack(h);
    }
    this.capacity.notify();
  }

  /**
   * Returns a taken job to its queue when no agent here will serve its type any more (the last
   * one left or is draining): there it counts as backlog and any master's agents can take it.
   */
  private giveBack(h: HeldJob): void {
    this.held.delete(buildKey(h.queue, h.job.id!));
    this.d.queues
      .get(h.queue)
      ?.giveBack(h.job.id!, h.token)
      .catch((err: unknown) => this.log.warn('job.lock-lost', { queue: h.queue, jobId: h.job.id, reason: (err as Error).message }));
  }

  /** Jobs taken but not yet on an agent, per type (they count as active in BullMQ). */
  pendingCount(queue: string): number {
    return this.pending.get(queue)?.length ?? 0;
  }

  private async feedLoop(q: JobTypeQueue): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      const { free, serving } = this.d.registry.capacityFor(q.type);
      if (!serving || this.pendingCount(q.type) >= Math.min(MAX_PENDING_PER_TYPE, free + PREFETCH)) {
        await this.capacity.wait();
        continue;
      }
      let taken: Awaited<ReturnType<JobTypeQueue['take']>>;
      try {
        taken = await q.take();
      } catch (err) {
        if (signal.aborted) return;
        this.log.error('queue.error', { queue: q.type, error: err });
        await this.d.clock.sleep(1000, signal).catch(() => undefined);
        continue;
      }
      if (!taken) continue;
      await this.accept(q, taken.job, taken.token).catch((err: unknown) => {
        this.log.error('queue.error', { queue: q.type, jobId: taken.job.id, error: err });
        return q.giveBack(taken.job.id!, taken.token).catch(() => undefined);
      });
    }
  }

  private async accept(q: JobTypeQueue, job: Job, token: string): Promise<void> {
    const check = checkJobPayload(job.data, q.type);
    if (!check.ok) {
      this.log.warn('job.invalid', { queue: q.type, jobId: job.id, reason: check.reason });
      job
        .moveToFailed(new UnrecoverableError(check.reason), token)
        .then(() => this.emit('job-settled', q.type, job.id!))
        .catch((err: unknown) => this.log.error('queue.error', { queue: q.type, jobId: job.id, error: err }));
      return;
    }
    const attempt = await attemptOf(q.type, job, this.d.builds);
    const h = heldJobOf({ queue: q.type, job, token, payload: check.payload, attempt, timeoutSec: this.timeoutOf(q.type, check.payload.timeoutSec) });
    this.held.set(buildKey(q.type, job.id!), h);
    if (this.place(h)) return;
    if (this.d.registry.capacityFor(q.type).serving) this.pending.get(q.type)!.push(h);
    else this.giveBack(h);
  }

  private place(h: HeldJob): boolean {
    const choice = chooseAgent(h.queue, h.payload.requirements, this.d.registry.list());
    if (!choice.agent) return false;
    const agent = choice.agent;
    const now = this.d.clock.now();
    h.agentId = agent.id;
    h.build = identityOf(h, agent, now);
    agent.running.add(buildKey(h.queue, h.job.id!));
    if (agent.running.size === 1) this.emit('agent-busy', agent);
    agent.send({
      type: 'assign',
      queue: h.queue,
      jobId: h.job.id!,
      lockToken: h.token,
      attempt: h.attempt,
      payload: h.payload,
      timeoutSec: h.timeoutSec,
    });
    this.emit('build-dispatched', h.build);
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
    const h = this.ownedBy(agent, f);
    if (!h || !h.build) return;
    h.startedAt = f.startedAt;
    this.log.debug('job.started', { queue: h.queue, jobId: f.jobId, attempt: h.attempt, agent: agent.name });
    const build = h.build;
    h.writes = h.writes
      .then(() => this.d.builds.started(build, f.startedAt))
      .catch((err: unknown) => this.log.error('redis.error', { op: 'build.started', jobId: f.jobId, error: err }));
  }

  onLog(agent: ConnectedAgent, queue: string, jobId: string, data: string): void {
    const h = this.held.get(buildKey(queue, jobId));
    if (!h || h.agentId !== agent.id) return;
    // Emitted once stored, so a follower woken by it reads the new output.
    h.writes = h.writes
      .then(() => this.d.builds.appendLog(queue, jobId, h.attempt, data))
      .then(() => void this.emit('build-log', queue, jobId, h.attempt, data))
      .catch((err: unknown) => this.log.error('redis.error', { op: 'build.log', jobId, error: err }));
  }

  /**
   * Records a finished build. BullMQ checks the lock token, so a result from an agent whose
   * job was meanwhile given to another agent can never complete the job a second time.
   */
  async onFinished(agent: ConnectedAgent, f: FinishedFrame): Promise<void> {
    const key = buildKey(f.queue, f.jobId);
    const h = this.held.get(key);
    try {
      if (h && h.token === f.lockToken) {
        this.release(h);
        await h.writes;
        await this.settlement.settle(h.job, h.token, f.result, h.timeoutSec);
        this.emit('build-finished', await this.settlement.record(h.build ?? identityOf(h, agent, f.result.startedAt), f.result));
      } else if (!h) {
        this.emit('build-finished', await this.settlement.settleUnheld(agent, f));
      } else {
        throw new Error('lock token does not match the current attempt');
      }
      this.emit('job-settled', f.queue, f.jobId);
    } catch (err) {
      this.log.warn('job.stale-result', { queue: f.queue, jobId: f.jobId, agent: agent.name, reason: (err as Error).message });
    } finally {
      agent.send({ type: 'ack', queue: f.queue, jobId: f.jobId });
    }
  }

  /** Frees the executor a held job used and forgets the job. */
  private release(h: HeldJob): void {
    const key = buildKey(h.queue, h.job.id!);
    this.held.delete(key);
    const agent = h.agentId ? this.d.registry.get(h.agentId) : undefined;
    if (agent?.running.delete(key) && agent.running.size === 0) this.emit('agent-idle', agent, this.d.clock.now());
    const list = this.pending.get(h.queue);
    const i = list ? list.indexOf(h) : -1;
    if (i >= 0) list!.splice(i, 1);
    this.capacityChanged();
  }

  /**
   * A (re)connecting agent reports the builds it still runs. Those whose lock this master holds
   * or can renew with the agent's token continue; the agent cancels the rest.
   */
  async reattach(agent: ConnectedAgent, running: readonly AgentHeldJob[]): Promise<Array<{ queue: string; jobId: string }>> {
    const kept: Array<{ queue: string; jobId: string }> = [];
    for (const r of running) {
      const key = buildKey(r.queue, r.jobId);
      const h = this.held.get(key);
      if (h) {
        if (h.token !== r.lockToken) continue;
        if (h.agentId && h.agentId !== agent.id) this.d.registry.get(h.agentId)?.running.delete(key);
        h.agentId = agent.id;
        h.build = { ...identityOf(h, agent, h.build?.dispatchedAt ?? this.d.clock.now()) };
        h.orphanedAt = null;
        agent.running.add(key);
        kept.push({ queue: r.queue, jobId: r.jobId });
        continue;
      }
      const q = this.d.queues.get(r.queue);
      const held = q && (await takeBack(q, r, agent.id, this.d.builds, (t) => this.timeoutOf(r.queue, t)));
      if (!held) continue;
      held.build = identityOf(held, agent, held.startedAt ?? this.d.clock.now());
      this.held.set(key, held);
      agent.running.add(key);
      kept.push({ queue: r.queue, jobId: r.jobId });
    }
    if (kept.length) this.log.info('agent.reattached', { agent: agent.name, jobs: kept.map((k) => buildKey(k.queue, k.jobId)) });
    for (const r of running) {
      if (!kept.some((k) => k.queue === r.queue && k.jobId === r.jobId)) await this.settlement.closeAbandoned(r.queue, r.jobId, agent.name, this.held.get(buildKey(r.queue, r.jobId))?.attempt, this.d.clock.now());
    }
    return kept;
  }

  /** The agent's connection is gone: its builds wait `lostAfterSec` for it to come back. */
  orphan(agent: ConnectedAgent): void {
    const now = this.d.clock.now();
    for (const key of agent.running) {
      const h = this.held.get(key);
      if (h && h.agentId === agent.id && h.orphanedAt === null) h.orphanedAt = now;
    }
  }

  /**
   * The builds of a vanished agent: preempted if its machine had a notice (requeued, no attempt
   * used), otherwise lost (retried while attempts remain, then failed).
   */
  private async lose(h: HeldJob): Promise<void> {
    this.release(h);
    if (h.notice) return this.preempt(h, `preempted: ${h.notice} notice, then its agent was lost`);
    const { record, failed } = await this.settlement.lost(h, 'agent lost', this.d.clock.now());
    if (failed) this.emit('job-settled', h.queue, h.job.id!);
    if (record) this.emit('build-finished', record);
  }

  /**
   * A spot notice for the machine `agent` runs on: no new builds for it, ever, and its builds,
   * should the machine die under them, are preempted rather than lost. Idempotent.
   */
  notice(agent: ConnectedAgent, notice: Notice, details: Record<string, unknown> = {}): void {
    const news = agent.notice !== notice && agent.notice !== 'spot-interruption';
    agent.draining = true;
    if (news) agent.notice = notice;
    for (const key of agent.running) {
      const h = this.held.get(key);
      if (h && h.agentId === agent.id) h.notice = agent.notice ?? notice;
    }
    if (!news) return;
    this.log.warn('agent.notice', { agent: agent.name, instanceId: agent.instanceId, notice, running: agent.running.size, ...details });
    this.capacityChanged();
    this.emit('agent-notice', agent, notice);
  }

  /**
   * The same for a machine by instance id, including builds whose agent has already
   * disconnected and may yet be declared lost. False if no agent of it is connected here.
   */
  noticeInstance(instanceId: string, notice: Notice): boolean {
    for (const h of this.held.values()) if (h.build?.instanceId === instanceId && h.notice !== 'spot-interruption') h.notice = notice;
    const agents = this.d.registry.list().filter((a) => a.instanceId === instanceId);
    for (const a of agents) this.notice(a, notice, { source: 'instance-state' });
    return agents.length > 0;
  }

  /** The machine is going down after a notice: its builds held here are requeued as preempted now. */
  async preemptInstance(instanceId: string, reason: string): Promise<void> {
    for (const a of this.d.registry.list().filter((x) => x.instanceId === instanceId)) {
      this.d.registry.remove(a);
      a.close(1000, 'instance going down');
    }
    for (const h of [...this.held.values()].filter((x) => x.build?.instanceId === instanceId)) {
      this.release(h);
      await this.preempt(h, reason);
    }
  }

  private async preempt(h: HeldJob, reason: string): Promise<void> {
    const rec = await this.settlement.preempted(h, reason, this.d.clock.now());
    if (!rec) return;
    this.emit('build-preempted', rec);
    this.emit('build-finished', rec);
  }

  /** Agents silent past lostAfter are dropped; orphaned builds past their grace are lost. */
  private async sweep(): Promise<void> {
    const now = this.d.clock.now();
    const lostAfter = this.d.config.agents.lostAfterSec * 1000;
    for (const a of this.d.registry.list()) {
      if (now - a.lastSeen > lostAfter) {
        this.log.warn('agent.lost', { agent: a.name, silentMs: now - a.lastSeen, running: a.running.size });
        this.d.registry.remove(a);
        a.close(4408, 'lost: no heartbeat');
        for (const key of [...a.running]) {
          const h = this.held.get(key);
          if (h && h.agentId === a.id) await this.lose(h);
        }
      }
    }
    for (const h of [...this.held.values()]) {
      if (h.orphanedAt !== null && now - h.orphanedAt > lostAfter) await this.lose(h);
    }
  }

  private async renewLocks(): Promise<void> {
    for (const q of this.d.queues.values()) {
      const mine = [...this.held.values()].filter((h) => h.queue === q.type);
      const lost = await q.renew(mine.map((h) => ({ jobId: h.job.id!, token: h.token })));
      for (const id of lost) {
        const h = this.held.get(buildKey(q.type, id));
        if (!h) continue;
        this.log.warn('job.lock-lost', { queue: q.type, jobId: id, agent: h.build?.agent });
        const agent = h.agentId ? this.d.registry.get(h.agentId) : undefined;
        agent?.send({ type: 'cancel', queue: q.type, jobId: id, reason: 'lock lost: the job was taken back' });
        this.release(h);
      }
    }
  }

  private timeoutOf(queue: string, fromPayload: number | undefined): number {
    return fromPayload ?? this.d.config.jobTypes[queue]?.timeoutSec ?? 3600;
  }

  private ownedBy(agent: ConnectedAgent, f: AgentHeldJob): HeldJob | undefined {
    const h = this.held.get(buildKey(f.queue, f.jobId));
    return h && h.agentId === agent.id && h.token === f.lockToken ? h : undefined;
  }

  /** The job ids and results of builds still held, for status pages. */
  heldJobs(): ReadonlyArray<Readonly<HeldJob>> {
    return [...this.held.values()];
  }
}
