import { randomUUID } from 'node:crypto';
import type { OverflowRule, PoolConfig } from '../config';
import type { Clock, Logger } from '../lib';
import type { Notice } from '../protocol';
import { decideCapacity, type CapacityDecision, type TypeDemand } from './capacity';
import { bootVerdict, idleVerdict } from './idle-verdict';
import { isPendingLaunch, pendingLaunchId, type InstanceRecord } from './instance';
import { noticeOf, type InstanceEvent } from './instance-state';
import { ProviderError, type LaunchRequest, type Provider } from './provider';
import { launchMarkets, spotFallback, type SpotFallback } from './spot-fallback';
import { SuspendBatch } from './suspend-batch';
import type { WarmWindows } from './warm-windows';

/** What the master knows of connected agents, as the provisioner needs it. */
export interface Fleet {
  /** Free executors of connected on-prem agents serving this job type. */
  idleOnprem(type: string): number;
  /** Free executors of connected agents running on these instances. */
  idleOn(instanceIds: ReadonlySet<string>): number;
  /** Builds of this job type running on connected agents of these instances. */
  busyWith(type: string, instanceIds: ReadonlySet<string>): number;
  /** Builds running on this instance's agent if it is connected to this master; undefined if not here. */
  runningOn(instanceId: string): number | undefined;
  /** Name of this instance's agent if it is connected to this master. */
  agentOn(instanceId: string): string | undefined;
  /** Stops (or resumes) dispatching to this instance's agent; false if it is not connected here. */
  setDraining(instanceId: string, draining: boolean): boolean;
  /** Closes the instance's agent connection on purpose (it is being suspended), if it is here. */
  disconnect(instanceId: string, reason: string): void;
  /**
   * Stops dispatching to this instance's agent for good and remembers the notice, so that its
   * builds, should the machine die under them, are requeued as preempted rather than lost.
   * False if the agent is not connected here.
   */
  notice(instanceId: string, notice: Notice): boolean;
  /** The machine is going down after a notice: the builds held here for it are requeued as preempted now. */
  preempt(instanceId: string, reason: string): void;
}

/** Preempted builds per job type, counted over a window (all masters see the same counts). */
export interface Preemptions {
  counts(pool: string, types: readonly string[], now: number, windowMs: number): Promise<Map<string, number>>;
}

/** Jobs waiting per job type (the queue monitor). */
export interface Backlog {
  current(type: string): { waiting: number; prioritized: number; oldestWaitMs: number | null } | undefined;
  /** Re-reads a type now; the scaler calls it before acting on a scale-up. */
  refresh?(type: string): Promise<unknown>;
}

/** The narrow part of the instance store a pool needs. */
export interface Instances {
  list(pool: string): Promise<InstanceRecord[]>;
  apply(pool: string, id: string, event: InstanceEvent, fields?: Partial<InstanceRecord>): Promise<{ ok: boolean; record?: InstanceRecord; reason?: string }>;
  /** Claims from `among` (the caller's fresh read of the pool) when given, else reads the pool itself. */
  claimWake(pool: string, count: number, among?: readonly InstanceRecord[]): Promise<InstanceRecord[]>;
  /** Forgets an instance (its machine was terminated). */
  remove(pool: string, id: string): Promise<void>;
}

/** Only one master at a time decides a pool's scale-up; the loser skips its turn. */
export interface PoolLock {
  run(pool: string, fn: () => Promise<void>): Promise<boolean>;
}

export interface PoolScalerDeps {
  name: string;
  config: PoolConfig;
  /** Job types whose agents this pool runs. */
  jobTypes: readonly string[];
  provider: Provider;
  instances: Instances;
  /** Brings an instance's busy/idle in line with its agent's builds, after the scaler changed it. */
  activity: { sync(pool: string, id: string): Promise<void> };
  lock: PoolLock;
  fleet: Fleet;
  preemptions: Preemptions;
  backlog: Backlog;
  warm: WarmWindows;
  clock: Clock;
  log: Logger;
}

/**
 * One pool's loop body: gather (instances, backlog, agents), decide (pure functions), apply
 * (state transitions in Redis, then the provider call). Every transition is a compare-and-set,
 * so several masters can run it; scale-up additionally runs under the pool lock.
 */
export class PoolScaler {
  lastDecision: CapacityDecision | undefined;
  /** The latest on-demand fallback verdict and the preemption counts behind it (spot pools). */
  lastFallback: (SpotFallback & { preemptions: Record<string, number> }) | undefined;
  /** Why the latest launch failed (the provider's message); null once one succeeds. */
  lastLaunchError: string | null = null;
  /** A launch per market whose outcome is not known yet (see `launch`). */
  private readonly launchIntents = new Map<'on-demand' | 'usual', LaunchRequest>();
  private readonly log: Logger;

  constructor(private readonly d: PoolScalerDeps) {
    this.log = d.log.child({ pool: d.name });
  }

  /**
   * One read of the pool's records serves the whole tick: taken under the pool lock when this
   * master gets it (so the scale-up decides from a picture no other master is changing), else
   * outside it, and kept current with what each transition here returns. The instances the
   * tick wants stopped or terminated go out together at its end, one call per mode.
   */
  async tick(rules: Readonly<Record<string, OverflowRule | undefined>>, signal: AbortSignal): Promise<void> {
    const suspends = new SuspendBatch({ pool: this.d.name, provider: this.d.provider, instances: this.d.instances, fleet: this.d.fleet, log: this.log });
    let records: Map<string, InstanceRecord> | undefined;
    try {
      await this.d.lock.run(this.d.name, async () => {
        records = await this.read();
        await this.bootTimeouts(records, suspends);
        await this.scaleUp(rules, records, signal);
      });
      if (!records) {
        records = await this.read();
        await this.bootTimeouts(records, suspends);
      }
      await this.reap(records, suspends);
      await this.retire(records, suspends);
    } finally {
      await suspends.flush(signal);
    }
  }

  private async read(): Promise<Map<string, InstanceRecord>> {
    return new Map((await this.d.instances.list(this.d.name)).map((r) => [r.id, r]));
  }

  /** A transition, with the tick's records kept in step with its outcome. */
  private async apply(records: Map<string, InstanceRecord>, id: string, event: InstanceEvent, fields?: Partial<InstanceRecord>) {
    const res = await this.d.instances.apply(this.d.name, id, event, fields);
    if (res.record) records.set(id, res.record);
    return res;
  }

  private demands(rules: Readonly<Record<string, OverflowRule | undefined>>, instances: readonly InstanceRecord[]): TypeDemand[] {
    const out: TypeDemand[] = [];
    let poolIds: ReadonlySet<string> | undefined;
    for (const [type, rule] of Object.entries(rules)) {
      if (!rule || rule.pool !== this.d.name) continue;
      const b = this.d.backlog.current(type);
      out.push({
        type,
        rule,
        waiting: (b?.waiting ?? 0) + (b?.prioritized ?? 0),
        oldestWaitMs: b?.oldestWaitMs ?? null,
        idleOnpremExecutors: this.d.fleet.idleOnprem(type),
        // Without a cap of its own the pool's cap, on existing instances, already bounds the type.
        cloudBusy: rule.maxInstances === undefined ? 0 : this.d.fleet.busyWith(type, (poolIds ??= new Set(instances.map((r) => r.id)))),
      });
    }
    return out;
  }

  private async scaleUp(rules: Readonly<Record<string, OverflowRule | undefined>>, records: Map<string, InstanceRecord>, signal: AbortSignal): Promise<void> {
    const decide = () => {
      const instances = [...records.values()];
      const up = new Set(instances.filter((r) => r.state === 'idle' || r.state === 'busy').map((r) => r.id));
      const pool = {
        name: this.d.name,
        maxInstances: this.d.config.maxInstances,
        executorsPerInstance: this.d.config.executorsPerInstance,
        instances,
        idleCloudExecutors: this.d.fleet.idleOn(up),
      };
      return { instances, decision: decideCapacity(pool, this.demands(rules, instances)) };
    };
    let { instances, decision } = decide();
    if (decision.undrain + decision.wake + decision.launch > 0 && this.d.backlog.refresh) {
      // The backlog snapshot can be a moment old: an agent that just registered may already
      // have taken the job it shows as waiting. Acting on it would wake one instance too many.
      await Promise.all(decision.types.filter((t) => t.overThreshold).map((t) => this.d.backlog.refresh!(t.type)));
      ({ instances, decision } = decide());
    }
    const warmShort = this.warmShortfall(instances);
    if (warmShort > decision.wake) {
      decision.wake = Math.min(warmShort, instances.filter((r) => r.state === 'suspended').length);
      decision.reason = `${decision.reason}; warm: ${warmShort} more wanted awake`;
    }
    if (decision.reason !== this.lastDecision?.reason) this.log.info('pool.decision', { ...decision, types: decision.types });
    this.lastDecision = decision;

    for (const r of instances.filter((x) => x.state === 'draining').slice(0, decision.undrain)) {
      const res = await this.apply(records, r.id, { type: 'undrain' });
      if (res.ok) {
        this.d.fleet.setDraining(r.id, false);
        this.log.info('instance.undrained', { instanceId: r.id, reason: decision.reason });
      }
    }
    if (decision.wake > 0) await this.wake(decision.wake, decision.reason, records, signal);
    const fallback = await this.fallback();
    const markets = launchMarkets(decision.launch, this.d.config.executorsPerInstance, decision.types, fallback?.onDemandTypes ?? []);
    if (markets.onDemand > 0) await this.launch(markets.onDemand, `${decision.reason}; ${fallback!.reason}`, records, signal, true);
    else this.launchIntents.delete('on-demand');
    if (markets.usual > 0) await this.launch(markets.usual, decision.reason, records, signal);
    else this.launchIntents.delete('usual');
  }

  /** Which job types launch on-demand now, from the preemptions counted in Redis (spot pools only). */
  private async fallback(): Promise<SpotFallback | undefined> {
    const ec2 = this.d.config.ec2;
    if (!ec2?.spot) return undefined;
    const { fallbackAfterPreemptions, windowMin } = this.d.config.spot;
    const counts = await this.d.preemptions.counts(this.d.name, this.d.jobTypes, this.d.clock.now(), windowMin * 60_000);
    const verdict = spotFallback({ spot: true, onDemandAllowed: ec2.spotFallbackToOnDemand, fallbackAfter: fallbackAfterPreemptions, windowMin, preemptions: counts });
    if (verdict.reason !== this.lastFallback?.reason) this.log.info('pool.spot-fallback', { onDemandTypes: verdict.onDemandTypes, reason: verdict.reason });
    this.lastFallback = { ...verdict, preemptions: Object.fromEntries(counts) };
    return verdict;
  }

  /** How many more instances the warm minimum / open windows want awake than are up or coming. */
  private warmShortfall(instances: readonly InstanceRecord[]): number {
    const wanted = this.d.warm.wanted(this.d.clock.now());
    const awake = instances.filter((r) => ['launching', 'waking', 'booting', 'idle', 'busy', 'draining'].includes(r.state)).length;
    return Math.max(0, wanted - awake);
  }

  private async wake(count: number, reason: string, records: Map<string, InstanceRecord>, signal: AbortSignal): Promise<void> {
    // The claim is the one-waker guarantee: only the caller that moved an instance to
    // "waking" calls start for it; every other master sees it as capacity on the way.
    const claimed = await this.d.instances.claimWake(this.d.name, count, [...records.values()]);
    if (claimed.length === 0) return;
    for (const r of claimed) records.set(r.id, r);
    const ids = claimed.map((r) => r.id);
    this.log.info('instance.waking', { count: ids.length, instanceIds: ids, hibernated: claimed.filter((r) => r.hibernated).map((r) => r.id), reason });
    try {
      await this.d.provider.start(ids, signal);
      for (const id of ids) await this.apply(records, id, { type: 'started' });
    } catch (err) {
      const message = (err as Error).message;
      // Throttled, out of capacity, backing off: the machines are still stopped and the backlog
      // still wants them. Back to suspended, they are woken again once the pool's backoff ends;
      // marked failed, they would count against the cap until the reconciler freed them.
      // A start refused for the machine's state (it already runs: the record is what is wrong)
      // is no passing condition; failed, the boot timeout and the reconciler sort it out.
      const deferred = err instanceof ProviderError && err.disposition === 'retry' && err.providerCode !== 'IncorrectInstanceState';
      this.log.error('instance.wake-failed', { count: ids.length, instanceIds: ids, deferred, code: err instanceof ProviderError ? err.providerCode : undefined, error: message });
      const event: InstanceEvent = deferred ? { type: 'wake-deferred', reason: `start deferred: ${message}` } : { type: 'fail', reason: `start failed: ${message}` };
      for (const id of ids) await this.apply(records, id, event);
    }
  }

  /**
   * A launch whose outcome is unknown is retried with the same ClientToken: a RunInstances
   * answered with a 5xx or a timeout may have launched, and a fresh token would launch again.
   * The intent is kept until a launch succeeds or fails for good, or a step wants fewer
   * instances than it asked for (the reconciler has then usually adopted what it launched).
   *
   * Before the call, one `launching` record per instance asked for is written, carrying the
   * ClientToken: every master and the dashboard see the launch in flight, and after a crash
   * the reconciler settles it by its token. When EC2 answers, its instances get their own
   * records and the pending ones go; what EC2 did not give is asked for again next tick.
   */
  private async launch(count: number, reason: string, records: Map<string, InstanceRecord>, signal: AbortSignal, onDemand = false): Promise<void> {
    const market = onDemand ? 'on-demand' : 'usual';
    let intent = this.launchIntents.get(market);
    if (!intent || intent.count > count) {
      intent = { count, clientToken: `spillway-${this.d.name}-${randomUUID()}`, ...(onDemand && { onDemand }) };
      this.launchIntents.set(market, intent);
    }
    const clientToken = intent.clientToken;
    this.log.info('instance.launching', { count: intent.count, clientToken, reason, ...(onDemand && { market: 'on-demand' }) });
    const pending = Array.from({ length: intent.count }, (_, n) => pendingLaunchId(clientToken, n));
    for (const id of pending) await this.apply(records, id, { type: 'launch' }, { clientToken });
    try {
      const machines = await this.d.provider.launch(intent, signal);
      this.launchIntents.delete(market);
      this.lastLaunchError = null;
      for (const m of machines) {
        await this.apply(records, m.id, { type: 'launch' }, { privateIp: m.privateIp, spot: m.spot, clientToken });
        await this.apply(records, m.id, { type: 'started' });
      }
      if (machines.length < intent.count) this.log.info('instance.launch-short', { wanted: intent.count, launched: machines.length, clientToken, reason: 'EC2 gave fewer; the rest is asked for next step' });
    } catch (err) {
      if (err instanceof ProviderError && err.disposition === 'fatal') this.launchIntents.delete(market);
      const message = (err as Error).message;
      // The same refusal every step (an exhausted address plan) is one line, not one a second.
      if (message !== this.lastLaunchError) this.log.error('instance.launch-failed', { count: intent.count, clientToken, error: message });
      this.lastLaunchError = message;
    } finally {
      for (const id of pending) {
        await this.d.instances.remove(this.d.name, id);
        records.delete(id);
      }
    }
  }

  private async bootTimeouts(records: Map<string, InstanceRecord>, suspends: SuspendBatch): Promise<void> {
    const now = this.d.clock.now();
    for (const r of [...records.values()]) {
      // A launch not answered yet names no machine; the reconciler settles one left by a crash.
      if (isPendingLaunch(r.id)) continue;
      // Adopted as booting (after Redis lost its data, or from another master's launch) while
      // its agent was already connected here: no registration is coming, the machine is up.
      const agent = r.state === 'booting' ? this.d.fleet.agentOn(r.id) : undefined;
      if (agent) {
        const res = await this.apply(records, r.id, { type: 'registered', agent }, { agent });
        if (res.ok) this.log.info('instance.registered', { pool: this.d.name, instanceId: r.id, agent, reason: 'its agent was already connected' });
        continue;
      }
      const v = bootVerdict(r, now, this.d.config.bootTimeoutSec * 1000);
      if (!v.act) continue;
      const res = await this.apply(records, r.id, { type: 'fail', reason: v.reason });
      if (!res.ok) continue;
      this.log.warn('instance.boot-timeout', { instanceId: r.id, reason: v.reason });
      // A failed instance is stopped so it costs nothing; it can be woken again later. A plain
      // stop, never hibernation: a machine that failed to boot must not be the first one woken.
      const sus = await this.apply(records, r.id, { type: 'suspend', reason: v.reason });
      if (sus.ok) suspends.add(r.id, v.reason, 'stop');
    }
  }

  /**
   * Idle instances whose agents are connected to this master: only this master knows for sure
   * that no build runs there, because only it dispatches to them. Marking the agent draining
   * before the state change means no build can be dispatched to it in between.
   */
  private async reap(records: Map<string, InstanceRecord>, suspends: SuspendBatch): Promise<void> {
    const instances = [...records.values()];
    const awake = instances.filter((r) => r.state === 'idle' || r.state === 'busy').length;
    const backlog = this.d.jobTypes.reduce((n, t) => {
      const b = this.d.backlog.current(t);
      return n + (b ? b.waiting + b.prioritized : 0);
    }, 0);
    const now = this.d.clock.now();
    const warmWanted = this.d.warm.wanted(now);
    let stillAwake = awake;
    for (const r of instances) {
      const running = this.d.fleet.runningOn(r.id);
      if (running === undefined) continue;
      const v = idleVerdict({ instance: r, now, quietPeriodMs: this.d.config.quietPeriodMin * 60_000, backlog, warmWanted, awake: stillAwake, running });
      if (!v.act) continue;
      if (!this.d.fleet.setDraining(r.id, true)) continue;
      const res = await this.apply(records, r.id, { type: 'drain', reason: v.reason });
      if (!res.ok) {
        this.d.fleet.setDraining(r.id, false);
        continue;
      }
      if (this.d.fleet.runningOn(r.id) !== 0) {
        // A build slipped in before the agent was marked draining: keep the instance, busy.
        await this.apply(records, r.id, { type: 'undrain' });
        this.d.fleet.setDraining(r.id, false);
        await this.d.activity.sync(this.d.name, r.id);
        continue;
      }
      stillAwake--;
      this.log.info('instance.draining', { instanceId: r.id, agent: r.agent, reason: v.reason });
      const sus = await this.apply(records, r.id, { type: 'suspend', reason: v.reason });
      if (sus.ok) suspends.add(r.id, v.reason, this.d.config.suspend);
    }
  }

  /**
   * Instances retiring after a notice whose agents are connected to this master: the agent is
   * kept from new builds (again: the notice may have reached another master first), and once
   * its last build has ended the machine is terminated, since it is going away anyway and a
   * replacement, if the backlog wants one, is launched like any other.
   */
  private async retire(records: Map<string, InstanceRecord>, suspends: SuspendBatch): Promise<void> {
    for (const r of [...records.values()]) {
      const notice = noticeOf(r);
      const running = this.d.fleet.runningOn(r.id);
      if (!notice || running === undefined) continue;
      this.d.fleet.notice(r.id, notice);
      if (running > 0) continue;
      const why = `retired after a ${notice} notice`;
      const res = await this.apply(records, r.id, { type: 'suspend', reason: why });
      if (!res.ok) continue;
      this.log.info('instance.retired', { instanceId: r.id, agent: r.agent, notice });
      suspends.add(r.id, why, 'terminate');
    }
  }
}
