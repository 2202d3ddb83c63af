import type { Redis } from 'ioredis';
import type { Config } from '../config';
import { runScript, type Clock } from '../lib';
import type { InstanceRecord, InstanceState } from '../provisioner';
import { ACCRUE_USAGE_SCRIPT } from './lua/accrue-usage-script';

/** States an EC2 instance is billed in (it is running, or on its way up or down). */
const BILLED: ReadonlySet<InstanceState> = new Set(['launching', 'waking', 'booting', 'idle', 'busy', 'draining', 'retiring', 'suspending']);

const DAY_MS = 24 * 3600 * 1000;

/** Hours of one pool in a period. */
export interface PoolUsage {
  pool: string;
  spotHours: number;
  onDemandHours: number;
  /** Hours instances spent suspended: what keeping the pool running would have added. */
  suspendedHours: number;
  /** null when the pool has no `price`. */
  cost: number | null;
  /** What the suspended hours would have cost. */
  savedCost: number | null;
}

/** Instance-hours one job type used in one pool: its cloud build time / executors per instance. */
export interface TypeUsage {
  type: string;
  pool: string;
  hours: number;
  cost: number | null;
}

export interface UsagePeriod {
  /** First and last day (UTC, YYYY-MM-DD) included. */
  from: string;
  to: string;
  pools: PoolUsage[];
  types: TypeUsage[];
  totalCost: number | null;
  savedCost: number | null;
}

/** `GET /api/cost`: today and this week (Monday to today, UTC). */
export interface UsageReport {
  currency: string;
  today: UsagePeriod;
  week: UsagePeriod;
}

export interface UsageLedgerOptions {
  redis: Redis;
  keyPrefix: string;
  clock: Pick<Clock, 'now'>;
  /** Longest gap between two accruals that is charged in full. */
  maxGapMs: number;
  /** Days a day's hash is kept. @defaultValue 15 */
  retentionDays?: number;
}

/**
 * Instance-hours per pool (spot / on-demand / suspended) and per job type, by UTC day, in
 * Redis so every master reads the same figures and they survive restarts. Cost is hours times
 * the pool's configured price, computed when read, so a price change applies to history too.
 */
export class UsageLedger {
  private readonly r: Redis;
  private readonly ttlSec: number;

  constructor(private readonly opts: UsageLedgerOptions) {
    this.r = opts.redis;
    this.ttlSec = (opts.retentionDays ?? 15) * 24 * 3600;
  }

  /**
   * Charges the time since the last accrual of each instance to its current state; resolves
   * with the seconds this call charged per field (`pool:<pool>:running:<spot|ondemand>`, ...).
   */
  async accrue(instances: ReadonlyArray<Pick<InstanceRecord, 'pool' | 'id' | 'state' | 'spot'>>): Promise<Map<string, number>> {
    const now = this.opts.clock.now();
    const args: Array<string | number> = [now, this.opts.maxGapMs, this.ttlSec];
    for (const i of instances) args.push(`${i.pool}/${i.id}`, bucketOf(i));
    const out = await runScript(this.r, ACCRUE_USAGE_SCRIPT, [this.key('accrued'), this.dayKey(now)], args);
    const charged = new Map<string, number>();
    const flat = Array.isArray(out) ? (out as unknown[]).map(String) : [];
    for (let i = 0; i + 1 < flat.length; i += 2) charged.set(flat[i]!, Number(flat[i + 1]));
    return charged;
  }

  /** Records a cloud build's share of an instance: `seconds` of one executor out of `executors`. */
  async addBuild(type: string, pool: string, spot: boolean, seconds: number, executors: number): Promise<void> {
    if (!(seconds > 0)) return;
    const key = this.dayKey(this.opts.clock.now());
    await this.r.multi().hincrbyfloat(key, `type:${type}:${pool}:${spot ? 'spot' : 'ondemand'}`, seconds / executors).expire(key, this.ttlSec).exec();
  }

  async report(config: Pick<Config, 'pools'> & { dashboard: { currency: string } }): Promise<UsageReport> {
    const now = this.opts.clock.now();
    const today = dayOf(now);
    const monday = now - ((new Date(now).getUTCDay() + 6) % 7) * DAY_MS;
    const days: string[] = [];
    for (let t = monday; dayOf(t) <= today; t += DAY_MS) days.push(dayOf(t));
    const pipeline = this.r.pipeline();
    for (const d of days) pipeline.hgetall(this.key(`usage:${d}`));
    const hashes = ((await pipeline.exec()) ?? []).map(([err, h]) => {
      if (err) throw err;
      return h as Record<string, string>;
    });
    const byDay = new Map(days.map((d, i) => [d, hashes[i] ?? {}]));
    return {
      currency: config.dashboard.currency,
      today: period(config, today, today, [byDay.get(today) ?? {}]),
      week: period(config, days[0]!, today, [...byDay.values()]),
    };
  }

  private dayKey(ms: number): string {
    return this.key(`usage:${dayOf(ms)}`);
  }

  private key(name: string): string {
    return `${this.opts.keyPrefix}:${name}`;
  }
}

/** The hash field an instance's time goes to, '' when it is neither billed nor saved. */
function bucketOf(i: Pick<InstanceRecord, 'pool' | 'state' | 'spot'>): string {
  const kind = i.spot ? 'spot' : 'ondemand';
  if (BILLED.has(i.state)) return `pool:${i.pool}:running:${kind}`;
  if (i.state === 'suspended') return `pool:${i.pool}:suspended:${kind}`;
  return '';
}

function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Sums the day hashes of a period into hours and costs. */
function period(config: Pick<Config, 'pools'>, from: string, to: string, hashes: ReadonlyArray<Record<string, string>>): UsagePeriod {
  const seconds = new Map<string, number>();
  for (const h of hashes) for (const [k, v] of Object.entries(h)) seconds.set(k, (seconds.get(k) ?? 0) + Number(v));
  const hours = (field: string) => (seconds.get(field) ?? 0) / 3600;
  const priceOf = (pool: string, spot: boolean): number | undefined => {
    const p = config.pools[pool]?.price;
    return p && (spot ? (p.spotPerHour ?? p.onDemandPerHour) : p.onDemandPerHour);
  };
  const costOf = (pool: string, spotH: number, onDemandH: number): number | null => {
    const onDemand = priceOf(pool, false);
    return onDemand === undefined ? null : spotH * priceOf(pool, true)! + onDemandH * onDemand;
  };

  const pools = Object.keys(config.pools).map((pool): PoolUsage => {
    const spotHours = hours(`pool:${pool}:running:spot`);
    const onDemandHours = hours(`pool:${pool}:running:ondemand`);
    const suspendedSpot = hours(`pool:${pool}:suspended:spot`);
    const suspendedOnDemand = hours(`pool:${pool}:suspended:ondemand`);
    return {
      pool,
      spotHours,
      onDemandHours,
      suspendedHours: suspendedSpot + suspendedOnDemand,
      cost: costOf(pool, spotHours, onDemandHours),
      savedCost: costOf(pool, suspendedSpot, suspendedOnDemand),
    };
  });

  const typeHours = new Map<string, { type: string; pool: string; spot: number; onDemand: number }>();
  for (const [field, secs] of seconds) {
    const m = /^type:(.+):([^:]+):(spot|ondemand)$/.exec(field);
    if (!m) continue;
    const [, type, pool, kind] = m as unknown as [string, string, string, 'spot' | 'ondemand'];
    const t = typeHours.get(`${type}\n${pool}`) ?? { type, pool, spot: 0, onDemand: 0 };
    if (kind === 'spot') t.spot += secs / 3600;
    else t.onDemand += secs / 3600;
    typeHours.set(`${type}\n${pool}`, t);
  }
  const types = [...typeHours.values()]
    .map((t): TypeUsage => ({ type: t.type, pool: t.pool, hours: t.spot + t.onDemand, cost: costOf(t.pool, t.spot, t.onDemand) }))
    .sort((a, b) => b.hours - a.hours || a.type.localeCompare(b.type));

  const sum = (xs: Array<number | null>): number | null => (xs.some((x) => x !== null) ? xs.reduce<number>((a, x) => a + (x ?? 0), 0) : null);
  return { from, to, pools, types, totalCost: sum(pools.map((p) => p.cost)), savedCost: sum(pools.map((p) => p.savedCost)) };
}
