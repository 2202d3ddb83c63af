import type { Redis } from 'ioredis';
import { poolJobTypes, type Config } from '../config';
import { BackgroundLoop, type BackoffPolicy, type Clock, type Logger } from '../lib';
import type { Notice } from '../protocol';
import { BackoffProvider } from './backoff-provider';
import type { CapacityDecision } from './capacity';
import type { Ec2Event } from './ec2-event';
import type { InstanceRecord } from './instance';
import { InstanceActivity } from './instance-activity';
import { noticeOf, type InstanceEvent } from './instance-state';
import { RedisPoolLock } from './pool-lock';
import { PreemptionWindow } from './preemption-window';
import { reconcilePool, type ReconcileStore } from './reconciler';
import { PoolScaler, type Backlog, type Fleet, type Instances } from './pool-scaler';
import type { Provider } from './provider';
import type { RuleBook } from './rule-book';
import type { Ec2EventSink } from './spot-notice-consumer';
import type { SpotFallback } from './spot-fallback';
import { WarmWindows } from './warm-windows';

export interface ProvisionerDeps {
  config: Config;
  redis: Redis;
  instances: Instances & ReconcileStore & { get(pool: string, id: string): Promise<InstanceRecord | undefined> };
  providers: ReadonlyMap<string, Provider>;
  fleet: Fleet;
  backlog: Backlog;
  rules: RuleBook;
  clock: Clock;
  log: Logger;
  /** Decisions are also made this often without any event. @defaultValue 1000 */
  tickMs?: number;
  /** A pool's step (and the provider calls in it) is aborted past this. @defaultValue 120000 */
  stepTimeoutMs?: number;
  /** Pauses of a pool whose provider calls keep failing. @defaultValue 5 s doubling up to 120 s */
  backoff?: Partial<BackoffPolicy>;
  /** Jitter source for those pauses, in [0, 1). @defaultValue Math.random */
  random?: () => number;
}

/** A row of `GET /api/pools`. */
export interface PoolReport {
  name: string;
  provider: string;
  ready: boolean;
  setupError: string | null;
  /** Why the pool's latest launch failed (e.g. its VPN address plan is exhausted); null after a success. */
  launchError: string | null;
  maxInstances: number;
  instances: InstanceRecord[];
  decision: CapacityDecision | null;
  /** Spot pools: preemptions per job type in the window, and which types launch on-demand because of them. */
  spotFallback: (SpotFallback & { preemptions: Record<string, number> }) | null;
}

interface PoolEntry {
  scaler: PoolScaler;
  provider: BackoffProvider;
  warm: WarmWindows;
  ready: boolean;
  setupError: string | null;
  nextSetupAt: number;
  reconciledAt: number | undefined;
}

/**
 * Runs every pool's scaler on one {@link BackgroundLoop}: no overlapping steps, woken early by
 * `kick()` when the backlog changes. A pool whose provider fails to set up is retried on its own, without
 * holding up the others.
 */
export class Provisioner implements Ec2EventSink {
  private readonly pools = new Map<string, PoolEntry>();
  private readonly preemptions: PreemptionWindow;
  private readonly loop: BackgroundLoop;
  private readonly log: Logger;
  private readonly lock: RedisPoolLock;
  private readonly activity: InstanceActivity;

  constructor(private readonly d: ProvisionerDeps) {
    this.lock = new RedisPoolLock(d.redis, d.config.redis.keyPrefix);
    this.log = d.log.child({ component: 'provisioner' });
    this.activity = new InstanceActivity({ instances: d.instances, fleet: d.fleet, now: () => d.clock.now(), log: this.log });
    this.preemptions = new PreemptionWindow(d.redis, d.config.redis.keyPrefix);
    this.loop = new BackgroundLoop({
      name: 'provisioner',
      everyMs: d.tickMs ?? 1000,
      runAtStart: true,
      run: (signal) => this.step(signal),
      clock: d.clock,
      log: this.log,
      errorEvent: 'pool.error',
    });
    for (const [name, pool] of Object.entries(d.config.pools)) {
      const inner = d.providers.get(name);
      if (!inner) continue;
      const provider = new BackoffProvider({
        pool: name,
        provider: inner,
        clock: d.clock,
        log: this.log,
        ...(d.backoff && { policy: d.backoff }),
        ...(d.random && { random: d.random }),
      });
      const warm = new WarmWindows(pool);
      const jobTypes = poolJobTypes(d.config, name);
      this.pools.set(name, {
        provider,
        warm,
        ready: false,
        setupError: null,
        nextSetupAt: 0,
        reconciledAt: undefined,
        scaler: new PoolScaler({
          name,
          config: pool,
          jobTypes,
          provider,
          instances: d.instances,
          activity: this.activity,
          lock: this.lock,
          fleet: d.fleet,
          preemptions: this.preemptions,
          backlog: d.backlog,
          warm,
          clock: d.clock,
          log: this.log,
        }),
      });
    }
  }

  start(): void {
    this.loop.start();
  }

  /** Decide now (a job arrived, an agent came or went). */
  kick(): void {
    this.loop.kick();
  }

  async stop(): Promise<void> {
    await this.loop.stop();
    await this.activity.flush();
    for (const p of this.pools.values()) p.warm.close();
  }

  /**
   * Every update of one instance from its agent's events (registered, busy, idle, notice)
   * resolves once applied, in the order the events came in.
   */
  onRegistered(instanceId: string, agent: string): Promise<void> {
    this.activity.agentArrived(instanceId);
    return this.activity.serial(instanceId, async () => {
      const found = await this.find(instanceId);
      if (!found) return;
      const res = await this.d.instances.apply(found.pool, instanceId, { type: 'registered', agent }, { agent });
      if (res.ok) this.log.info('instance.registered', { pool: found.pool, instanceId, agent });
      // An agent reconnecting from a machine that got a notice must not take new builds there.
      const notice = noticeOf(res.record ?? found.record);
      if (notice) this.d.fleet.notice(instanceId, notice);
      // Its first build may have been dispatched before this record said it was up.
      await this.activity.update(found.pool, instanceId);
    });
  }

  /**
   * A spot interruption warning or rebalance recommendation for a managed instance (from its
   * agent, or from SQS): its agent takes no new builds from now on, and the instance retires.
   * A rebalance recommendation never downgrades an interruption already recorded.
   */
  onNotice(instanceId: string, notice: Notice, details: Record<string, unknown>, pools?: readonly string[]): Promise<boolean> {
    // One after another, so the same notice from SQS and from the agent is recorded and logged once.
    return this.activity.serial(instanceId, () => this.notice(instanceId, notice, details, pools));
  }

  private async notice(instanceId: string, notice: Notice, details: Record<string, unknown>, pools?: readonly string[]): Promise<boolean> {
    const found = await this.find(instanceId, pools);
    if (!found) return false;
    this.d.fleet.notice(instanceId, notice);
    const had = noticeOf(found.record);
    if (had === notice || had === 'spot-interruption') return true;
    const res = await this.d.instances.apply(found.pool, instanceId, { type: 'notice', notice });
    const fields = { pool: found.pool, instanceId, agent: found.record.agent, notice, ...details };
    if (res.ok) this.log.warn('instance.notice', { ...fields, previous: found.record.state });
    else this.log.warn('instance.notice', { ...fields, state: found.record.state, refused: res.reason });
    return true;
  }

  /**
   * An EC2 event from the notice queue. After a notice, the machine stopping or going away ends
   * its builds: they are requeued as preempted at once instead of waiting for the agent to be
   * declared lost. A termination is recorded whatever came before.
   */
  async onEc2Event(e: Ec2Event, pools?: readonly string[]): Promise<'handled' | 'unmanaged'> {
    if (e.kind !== 'state-change') {
      const managed = await this.onNotice(e.instanceId, e.kind, { source: 'sqs', eventId: e.eventId, time: e.time, ...(e.kind === 'spot-interruption' && { action: e.action }) }, pools);
      return managed ? 'handled' : 'unmanaged';
    }
    const found = await this.find(e.instanceId, pools);
    if (!found) return 'unmanaged';
    const { pool, record } = found;
    const notice = noticeOf(record);
    const going = e.state === 'stopping' || e.state === 'stopped' || e.state === 'shutting-down' || e.state === 'terminated';
    this.log.info('instance.state-reported', { pool, instanceId: e.instanceId, ec2State: e.state, state: record.state, eventId: e.eventId });
    if (!going) return 'handled';
    if (notice) this.d.fleet.preempt(e.instanceId, `preempted: ${notice} notice, then EC2 reported ${e.state}`);
    const gone = e.state === 'shutting-down' || e.state === 'terminated';
    const event: InstanceEvent | undefined = gone
      ? { type: 'terminated', reason: `EC2 reported ${e.state}${notice ? ` after a ${notice} notice` : ''}` }
      : notice
        ? { type: 'fail', reason: `EC2 reported ${e.state} after a ${notice} notice` }
        : undefined;
    if (event) await this.d.instances.apply(pool, e.instanceId, event);
    return 'handled';
  }

  /** A build of `type` on this instance was preempted: counted for the pool's on-demand fallback. */
  async onPreempted(instanceId: string, type: string): Promise<void> {
    const found = await this.find(instanceId);
    if (!found) return;
    const windowMin = this.d.config.pools[found.pool]!.spot.windowMin;
    const count = await this.preemptions.add(found.pool, type, this.d.clock.now(), windowMin * 60_000);
    this.log.info('pool.preemption', { pool: found.pool, instanceId, type, preemptions: count, windowMin });
    this.kick();
  }

  /** The instance's agent went from no builds to some: busy/idle follows its running count. */
  onBusy(instanceId: string): Promise<void> {
    return this.activity.serial(instanceId, async () => {
      const found = await this.find(instanceId);
      if (found) await this.activity.update(found.pool, instanceId);
    });
  }

  /** The instance's agent ran its last build until `at`: its quiet period counts from there. */
  onIdle(instanceId: string, at: number): Promise<void> {
    this.activity.buildsEnded(instanceId, at);
    return this.onBusy(instanceId);
  }

  async report(): Promise<PoolReport[]> {
    const out: PoolReport[] = [];
    for (const [name, p] of this.pools) {
      out.push({
        name,
        provider: p.provider.kind,
        ready: p.ready,
        setupError: p.setupError,
        launchError: p.scaler.lastLaunchError,
        maxInstances: this.d.config.pools[name]!.maxInstances,
        instances: await this.d.instances.list(name),
        decision: p.scaler.lastDecision ?? null,
        spotFallback: p.scaler.lastFallback ?? null,
      });
    }
    return out;
  }

  /** The pool and record of a managed instance (among `among` pools if given), or undefined for one spillway does not know. */
  async find(instanceId: string, among?: readonly string[]): Promise<{ pool: string; record: InstanceRecord } | undefined> {
    for (const pool of this.pools.keys()) {
      if (among && !among.includes(pool)) continue;
      const record = await this.d.instances.get(pool, instanceId);
      if (record) return { pool, record };
    }
    return undefined;
  }

  /** One pass over every pool: gather, decide, apply. Never rejects; each pool's failure is its own. */
  private async step(signal: AbortSignal): Promise<void> {
    const rules = await this.d.rules.rules().catch((err: unknown) => {
      this.log.error('pool.error', { error: (err as Error).message });
      return undefined;
    });
    if (!rules) return;
    for (const [name, p] of this.pools) {
      if (signal.aborted) return;
      // A pool whose provider keeps failing sits out its backoff: no reconcile, no scaling,
      // no suspension, since each of them would call the provider.
      if (this.d.clock.now() < p.provider.readyAt) continue;
      const step = AbortSignal.any([signal, AbortSignal.timeout(this.d.stepTimeoutMs ?? 120_000)]);
      try {
        if (!p.ready && !(await this.setup(name, p, step))) continue;
        const now = this.d.clock.now();
        if (p.reconciledAt === undefined || now - p.reconciledAt >= this.d.config.pools[name]!.reconcileSec * 1000) {
          // Under the pool's lock, like scale-up: the provider's list is a snapshot, and a
          // launch or wake another master made after it would otherwise be read as a machine
          // gone or stopped, and undone. A busy lock means try again next step.
          await this.lock.run(name, async () => {
            p.reconciledAt = now;
            await reconcilePool(name, p.provider, this.d.instances, now, step, this.log);
          });
        }
        await p.scaler.tick(rules, step);
      } catch (err) {
        this.log.error('pool.error', { pool: name, error: (err as Error).message });
      }
    }
  }

  private async setup(name: string, p: PoolEntry, signal: AbortSignal): Promise<boolean> {
    if (this.d.clock.now() < p.nextSetupAt) return false;
    try {
      await p.provider.setup(signal);
      p.ready = true;
      p.setupError = null;
      return true;
    } catch (err) {
      p.setupError = (err as Error).message;
      p.nextSetupAt = this.d.clock.now() + 30_000;
      this.log.error('pool.setup-failed', { pool: name, error: p.setupError, retryInMs: 30_000 });
      return false;
    }
  }
}

// Lives in config (the master's agent listener needs it without loading the provisioner); kept
// exported here for the provisioner's users.
export { poolJobTypes };
