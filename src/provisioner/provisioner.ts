import type { Redis } from 'ioredis';
import type { Config } from '../config';
import type { Clock, Logger } from '../lib';
import type { CapacityDecision } from './capacity';
import type { InstanceRecord } from './instance';
import { RedisPoolLock } from './pool-lock';
import { reconcilePool, type ReconcileStore } from './reconciler';
import { PoolScaler, type Backlog, type Fleet, type Instances } from './pool-scaler';
import type { Provider } from './provider';
import type { RuleBook } from './rule-book';
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
  /** How often Redis is compared with the provider's view. @defaultValue 60000 */
  reconcileMs?: number;
}

/** A row of `GET /api/pools`. */
export interface PoolReport {
  name: string;
  provider: string;
  ready: boolean;
  setupError: string | null;
  maxInstances: number;
  instances: InstanceRecord[];
  decision: CapacityDecision | null;
}

interface PoolEntry {
  scaler: PoolScaler;
  provider: Provider;
  warm: WarmWindows;
  ready: boolean;
  setupError: string | null;
  nextSetupAt: number;
  reconciledAt: number | undefined;
}

/**
 * Runs every pool's scaler: one loop, no overlapping runs, woken early by `kick()` when the
 * backlog changes. A pool whose provider fails to set up is retried on its own, without
 * holding up the others.
 */
export class Provisioner {
  private readonly pools = new Map<string, PoolEntry>();
  private readonly abort = new AbortController();
  private kicked: (() => void) | undefined;
  private pendingKick = false;
  private loop: Promise<void> | undefined;
  private readonly log: Logger;

  constructor(private readonly d: ProvisionerDeps) {
    this.log = d.log.child({ component: 'provisioner' });
    const lock = new RedisPoolLock(d.redis, d.config.redis.keyPrefix);
    for (const [name, pool] of Object.entries(d.config.pools)) {
      const provider = d.providers.get(name);
      if (!provider) continue;
      const warm = new WarmWindows(pool);
      const jobTypes = poolJobTypes(d.config, name);
      this.pools.set(name, {
        provider,
        warm,
        ready: false,
        setupError: null,
        nextSetupAt: 0,
        reconciledAt: undefined,
        scaler: new PoolScaler({ name, config: pool, jobTypes, provider, instances: d.instances, lock, fleet: d.fleet, backlog: d.backlog, warm, clock: d.clock, log: this.log }),
      });
    }
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Decide now (a job arrived, an agent came or went). */
  kick(): void {
    this.pendingKick = true;
    this.kicked?.();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.kicked?.();
    await this.loop;
    for (const p of this.pools.values()) p.warm.close();
  }

  async onRegistered(instanceId: string, agent: string): Promise<void> {
    const found = await this.find(instanceId);
    if (!found) return;
    const res = await this.d.instances.apply(found.pool, instanceId, { type: 'registered', agent }, { agent });
    if (res.ok) this.log.info('instance.registered', { pool: found.pool, instanceId, agent });
  }

  async onBusy(instanceId: string): Promise<void> {
    const found = await this.find(instanceId);
    if (found?.record.state === 'idle') await this.d.instances.apply(found.pool, instanceId, { type: 'job-started' });
  }

  async onIdle(instanceId: string, at: number): Promise<void> {
    const found = await this.find(instanceId);
    if (found?.record.state === 'busy') await this.d.instances.apply(found.pool, instanceId, { type: 'jobs-done', at }, { lastJobEndedAt: at });
  }

  async report(): Promise<PoolReport[]> {
    const out: PoolReport[] = [];
    for (const [name, p] of this.pools) {
      out.push({
        name,
        provider: p.provider.kind,
        ready: p.ready,
        setupError: p.setupError,
        maxInstances: this.d.config.pools[name]!.maxInstances,
        instances: await this.d.instances.list(name),
        decision: p.scaler.lastDecision ?? null,
      });
    }
    return out;
  }

  /** The pool and record of a managed instance, or undefined for one spillway does not know. */
  async find(instanceId: string): Promise<{ pool: string; record: InstanceRecord } | undefined> {
    for (const pool of this.pools.keys()) {
      const record = await this.d.instances.get(pool, instanceId);
      if (record) return { pool, record };
    }
    return undefined;
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      this.pendingKick = false;
      const rules = await this.d.rules.rules().catch((err: unknown) => {
        this.log.error('pool.error', { error: (err as Error).message });
        return undefined;
      });
      if (rules) {
        for (const [name, p] of this.pools) {
          if (signal.aborted) break;
          const step = AbortSignal.any([signal, AbortSignal.timeout(this.d.stepTimeoutMs ?? 120_000)]);
          try {
            if (!p.ready && !(await this.setup(name, p, step))) continue;
            const now = this.d.clock.now();
            if (p.reconciledAt === undefined || now - p.reconciledAt >= (this.d.reconcileMs ?? 60_000)) {
              p.reconciledAt = now;
              await reconcilePool(name, p.provider, this.d.instances, now, step, this.log);
            }
            await p.scaler.tick(rules, step);
          } catch (err) {
            this.log.error('pool.error', { pool: name, error: (err as Error).message });
          }
        }
      }
      if (this.pendingKick || signal.aborted) continue;
      await new Promise<void>((resolve) => {
        const ac = new AbortController();
        this.kicked = () => {
          ac.abort();
          resolve();
        };
        this.d.clock.sleep(this.d.tickMs ?? 1000, ac.signal).then(resolve, () => undefined);
      });
      this.kicked = undefined;
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

/** The job types a pool's agents serve: the pool's list, else the types that overflow into it. */
export function poolJobTypes(config: Config, pool: string): string[] {
  const listed = config.pools[pool]?.jobTypes;
  if (listed?.length) return [...listed];
  return Object.entries(config.jobTypes)
    .filter(([, t]) => t.overflow?.pool === pool)
    .map(([type]) => type);
}
