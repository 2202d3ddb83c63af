import type { Config } from '../../config';
import type { Clock, Logger } from '../../lib';
import type { Requirements } from '../../protocol';
import type { AgentRegistry } from '../agent-registry';
import type { DispatchEmitter } from '../dispatcher-events';
import { whyUnrunnable } from '../executor-choice';
import { lockOf, type HeldJob } from './held-job';
import type { HeldJobs } from './held-jobs';
import type { JobQueue } from '../job-queue';

/**
 * How long a job no agent can run is put aside before a master looks at it again. An agent
 * that can run it arriving here promotes it at once; this bounds the wait for one arriving
 * at another master, and the cost of looking (one take per parked job and period).
 */
const PARK_MS = 30_000;

interface Parked {
  queue: string;
  jobId: string;
  requirements: Requirements | undefined;
  reason: string;
  until: number;
}

export interface UnrunnableJobsDeps {
  config: Config;
  queues: ReadonlyMap<string, JobQueue>;
  jobs: HeldJobs;
  registry: AgentRegistry;
  events: DispatchEmitter;
  clock: Clock;
  log: Logger;
}

/**
 * Jobs that no connected agent can run (requirements nobody meets). Held, they would sit in
 * the dispatch slots of their type and block every job behind them; so they are parked in
 * their queue (BullMQ's delayed set, attempts untouched), promoted when a capable agent
 * connects, and failed once they have waited `unrunnableFailAfterSec` if their type sets it.
 */
export class UnrunnableJobs {
  private readonly parked = new Map<string, Parked>();

  constructor(private readonly d: UnrunnableJobsDeps) {}

  /** Parks (or fails) a held job that cannot be placed if no agent could run it; false if one could. */
  sideline(h: HeldJob): boolean {
    if (h.state.kind !== 'pending') return false;
    const reason = whyUnrunnable(h.queue, h.payload.requirements, this.d.registry.list());
    if (!reason) return false;
    const q = this.d.queues.get(h.queue);
    if (!q || !this.d.jobs.apply(h, { type: 'park' }).ok) return false;
    const now = this.d.clock.now();
    const failAfterSec = this.d.config.jobTypes[h.queue]?.unrunnableFailAfterSec;
    const deadline = failAfterSec === undefined ? Infinity : h.job.timestamp + failAfterSec * 1000;
    const fields = { queue: h.queue, jobId: h.job.id, reason };
    if (now >= deadline) {
      this.forget(h.queue, h.job.id);
      const why = `no connected agent can run it for ${failAfterSec}s: ${reason}`;
      q.fail(h.job.id, lockOf(h), why, false)
        .then(() => {
          this.d.log.warn('job.failed', { ...fields, reason: why });
          this.d.events.emit('job-settled', h.queue, h.job.id);
        })
        .catch((err: unknown) => this.d.log.warn('job.lock-lost', { ...fields, reason: (err as Error).message }));
      return true;
    }
    const until = Math.min(now + PARK_MS, deadline);
    const known = this.parked.has(`${h.queue}/${h.job.id}`);
    this.parked.set(`${h.queue}/${h.job.id}`, { queue: h.queue, jobId: h.job.id, requirements: h.payload.requirements, reason, until });
    if (!known) this.d.log.warn('job.unrunnable', { ...fields, failAfterSec: failAfterSec ?? null });
    q.park(h.job.id, lockOf(h), until).then(
      // A capable agent may have connected while the job was being parked.
      () => this.reasonFor(h.queue, h.payload.requirements) === null && this.agentsChanged(),
      (err: unknown) => this.d.log.warn('job.lock-lost', { ...fields, reason: (err as Error).message }),
    );
    return true;
  }

  /** A parked job was taken again: it is up for placing like any other. */
  taken(queue: string, jobId: string): void {
    this.forget(queue, jobId);
  }

  /** Agents changed: promotes the parked jobs one of them can run now. */
  agentsChanged(): void {
    const agents = this.d.registry.list();
    for (const p of this.current()) {
      if (whyUnrunnable(p.queue, p.requirements, agents) !== undefined) continue;
      this.forget(p.queue, p.jobId);
      void this.d.queues.get(p.queue)?.promote(p.jobId).catch(() => false);
    }
  }

  /** This master's parked jobs of a type: how many, and the reason of the latest. */
  of(queue: string): { count: number; reason: string | null } {
    const list = this.current().filter((p) => p.queue === queue);
    return { count: list.length, reason: list[list.length - 1]?.reason ?? null };
  }

  /** Why a job of `queue` with these requirements cannot run on any agent connected here; null if it can. */
  reasonFor(queue: string, requirements: Requirements | undefined): string | null {
    return whyUnrunnable(queue, requirements, this.d.registry.list()) ?? null;
  }

  /** Parked jobs whose time is not long past (another master may have taken one since). */
  private current(): Parked[] {
    const stale = this.d.clock.now() - PARK_MS;
    for (const [k, p] of this.parked) if (p.until < stale) this.parked.delete(k);
    return [...this.parked.values()];
  }

  private forget(queue: string, jobId: string): void {
    this.parked.delete(`${queue}/${jobId}`);
  }
}
