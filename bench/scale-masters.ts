/**
 * Scale benchmark, phase 3: do two masters ever start the same instance twice?
 *
 * Two `Provisioner`s (src/provisioner) run in-process, each with its own Redis connection and
 * InstanceStore over one keyspace (two masters), one shared counting provider, N suspended
 * instances seeded with `adopt`, a backlog of waiting jobs, kicked concurrently; start calls
 * are counted per instance. The same is repeated with two bare PoolScalers whose pool lock lets
 * everyone in, so only the atomic claim stands between them.
 */
import { Redis } from 'ioredis';
import { parseConfig, type Config } from '../src/config';
import { systemClock } from '../src/lib';
import {
  InstanceActivity,
  InstanceStore,
  PoolScaler,
  PreemptionWindow,
  Provisioner,
  RuleBook,
  WarmWindows,
  type InstanceRecord,
  type PoolLock,
} from '../src/provisioner';
import { poll } from './procs';
import { CountingProvider, EmptyFleet, FixedBacklog } from './scale-fakes';
import { MM_DEMAND, MM_INSTANCES, MM_KICKS, MM_START_DELAY_MS, POOL, TOKEN, TYPE } from './scale-knobs';
import { captureLogs, type LogCapture } from './scale-logs';

function mmConfig(redisUrl: string, prefix: string): Config {
  return parseConfig(
    {
      redis: { url: redisUrl, queuePrefix: `${prefix}-bull`, keyPrefix: `${prefix}-sw` },
      agents: { token: TOKEN },
      jobTypes: { [TYPE]: { overflow: { pool: POOL, minBacklog: 1 } } },
      pools: { [POOL]: { provider: 'local', maxInstances: MM_INSTANCES, bootTimeoutSec: 300, quietPeriodMin: 60, local: { preCreated: 0 } } },
    },
    {},
  );
}

async function seed(store: InstanceStore, ids: readonly string[]): Promise<void> {
  const now = Date.now();
  for (const id of ids) {
    const r = await store.adopt(POOL, { id, pool: POOL, state: 'suspended', since: now, version: 0, privateIp: null, spot: false, hibernated: false, agent: null, lastJobEndedAt: null, reason: 'seeded by the bench' });
    if (!r.ok) throw new Error(`seeding ${id}: ${r.reason}`);
  }
}

interface MasterSide {
  redis: Redis;
  store: InstanceStore;
  logs: LogCapture;
}

async function side(redisUrl: string, keyPrefix: string): Promise<MasterSide> {
  const r = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const logs = captureLogs('info');
  const store = new InstanceStore({ redis: r, keyPrefix, clock: systemClock, log: logs.log });
  return { redis: r, store, logs };
}

async function closeSide(s: MasterSide): Promise<void> {
  await s.store.close();
  await s.redis.quit().catch(() => s.redis.disconnect());
}

/**
 * What both kinds of round start from: a fresh keyspace under `prefix`, MM_INSTANCES instance
 * ids, one counting provider, backlog and fleet for both sides, and the two sides (`a` seeds
 * and reads).
 */
async function twoSides(redisUrl: string, prefix: string) {
  const config = mmConfig(redisUrl, prefix);
  const keyPrefix = config.redis.keyPrefix;
  const ids = Array.from({ length: MM_INSTANCES }, (_, i) => `i-${String(i + 1).padStart(4, '0')}`);
  const provider = new CountingProvider(ids, MM_START_DELAY_MS);
  const a = await side(redisUrl, keyPrefix);
  const b = await side(redisUrl, keyPrefix);
  // Shared by both sides, as the real queue and fleet would be: neither does I/O.
  const backlog = new FixedBacklog(TYPE, MM_DEMAND);
  const fleet = new EmptyFleet();
  return { config, keyPrefix, ids, provider, backlog, fleet, a, sides: [a, b] };
}

/** Error-level log entries of both sides, shortened for the report. */
const errorsOf = (sides: readonly MasterSide[]): string[] =>
  sides.flatMap((s) => s.logs.entries.filter((e) => e.level === 'error').map((e) => `${e.event}: ${JSON.stringify(e).slice(0, 200)}`));

const jitter = (maxMs: number) => new Promise((r) => setTimeout(r, Math.random() * maxMs));

async function waitBooting(store: InstanceStore, n: number): Promise<InstanceRecord[]> {
  return poll(`${n} instances booting`, 10_000, async () => {
    const list = await store.list(POOL);
    return list.filter((r) => r.state === 'booting').length >= n ? list : undefined;
  }, 5);
}

export interface MmRound {
  total: number;
  maxPer: number;
  instancesStarted: number;
  booting: number;
  launches: number;
  errors: string[];
  ms: number;
}

function summarise(provider: CountingProvider, list: InstanceRecord[], errs: string[], t0: number): MmRound {
  return {
    total: provider.totalStarts(),
    maxPer: provider.maxStartsPerInstance(),
    instancesStarted: provider.starts.size,
    booting: list.filter((r) => r.state === 'booting').length,
    launches: provider.launches,
    errors: errs,
    ms: Date.now() - t0,
  };
}

/** Two Provisioners (pool lock + claim), kicked concurrently. */
export async function mmRound(redisUrl: string, prefix: string): Promise<MmRound> {
  const { config, keyPrefix, ids, provider, backlog, fleet, a, sides } = await twoSides(redisUrl, prefix);
  const provisioners: Provisioner[] = [];
  try {
    await seed(a.store, ids);
    for (const s of sides) {
      provisioners.push(
        new Provisioner({
          config,
          redis: s.redis,
          instances: s.store,
          providers: new Map([[POOL, provider]]),
          fleet,
          backlog,
          rules: new RuleBook(s.redis, keyPrefix, config),
          clock: systemClock,
          log: s.logs.log,
          tickMs: 20,
        }),
      );
    }
    const t0 = Date.now();
    // Both loops start and every kick lands at a random point of some tick.
    await Promise.all([
      ...provisioners.map(async (p) => {
        await jitter(2);
        p.start();
      }),
      ...Array.from({ length: MM_KICKS }, () => provisioners.map(async (p) => {
        await jitter(10);
        p.kick();
      })).flat(),
    ]);
    await waitBooting(a.store, Math.min(MM_DEMAND, MM_INSTANCES));
    // Some more ticks on both sides: a late second waker would show up here.
    await new Promise((r) => setTimeout(r, 300));
    const list = await a.store.list(POOL);
    return summarise(provider, list, errorsOf(sides), t0);
  } finally {
    await Promise.allSettled(provisioners.map((p) => p.stop()));
    for (const s of sides) await closeSide(s);
  }
}

/** Two bare PoolScalers whose lock lets everyone in: only claimWake separates them. */
export async function mmRoundNoLock(redisUrl: string, prefix: string): Promise<MmRound> {
  const { config, keyPrefix, ids, provider, backlog, fleet, a, sides } = await twoSides(redisUrl, prefix);
  const pool = config.pools[POOL]!;
  const open: PoolLock = { run: async (_pool, fn) => (await fn(), true) };
  const warm = new WarmWindows(pool);
  try {
    await seed(a.store, ids);
    const rules = await new RuleBook(a.redis, keyPrefix, config).rules();
    const scalers = sides.map(
      (s) =>
        new PoolScaler({
          name: POOL,
          config: pool,
          jobTypes: [TYPE],
          provider,
          instances: s.store,
          activity: new InstanceActivity({ instances: s.store, fleet, now: () => systemClock.now(), log: s.logs.log }),
          lock: open,
          fleet,
          preemptions: new PreemptionWindow(s.redis, keyPrefix),
          backlog,
          warm,
          clock: systemClock,
          log: s.logs.log,
        }),
    );
    const t0 = Date.now();
    const signal = new AbortController().signal;
    await Promise.all(
      Array.from({ length: MM_KICKS }, () =>
        scalers.map(async (s) => {
          await jitter(10);
          await s.tick(rules, signal);
        }),
      ).flat(),
    );
    const list = await a.store.list(POOL);
    return summarise(provider, list, errorsOf(sides), t0);
  } finally {
    warm.close();
    for (const s of sides) await closeSide(s);
  }
}
