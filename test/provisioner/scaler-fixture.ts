import { Redis } from 'ioredis';
import { overflowSchema, type OverflowRule, type PoolConfig } from '../../src/config';
import { createLogger, type LogEntry, type Logger } from '../../src/lib';
import { InstanceActivity, PoolScaler, PreemptionWindow, WarmWindows, type Provider } from '../../src/provisioner';
import { InstanceStore } from '../../src/provisioner/instance-store';
import { RedisPoolLock } from '../../src/provisioner/pool-lock';
import { FakeBacklog } from '../fakes/fake-backlog';
import { FakeClock } from '../fakes/fake-clock';
import { FakeFleet } from '../fakes/fake-fleet';
import { redisUrl } from '../setup/root-hooks';
import { uniquePrefix } from '../setup/unique';
import { watchStates, type StateHistory } from './state-history';

export const POOL = 'cloud';

export interface ScalerFixture<P extends Provider> {
  clock: FakeClock;
  store: InstanceStore;
  provider: P;
  fleet: FakeFleet;
  backlog: FakeBacklog;
  scaler: PoolScaler;
  rules: Record<string, OverflowRule>;
  logs: LogEntry[];
  history: StateHistory;
  /** One scaler step, then every state change it made recorded. */
  tick(): Promise<void>;
}

/**
 * A real PoolScaler for pool `cloud` serving b2g, on a real redis with a fake clock, fleet and
 * backlog, around the provider the test makes; torn down through `disposers`.
 */
export async function scalerFixture<P extends Provider>(o: {
  name: string;
  config: PoolConfig;
  provider: (deps: { clock: FakeClock; log: Logger }) => P;
  disposers: Array<() => Promise<unknown>>;
}): Promise<ScalerFixture<P>> {
  const prefix = uniquePrefix(o.name);
  const redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  const clock = new FakeClock();
  const store = new InstanceStore({ redis, keyPrefix: prefix, clock });
  const logs: LogEntry[] = [];
  const log = createLogger({ silent: true, level: 'debug', sink: (e) => logs.push(e) });
  const fleet = new FakeFleet();
  const backlog = new FakeBacklog();
  const warm = new WarmWindows(o.config);
  const provider = o.provider({ clock, log });
  const scaler = new PoolScaler({
    name: POOL,
    config: o.config,
    jobTypes: ['b2g'],
    provider,
    instances: store,
    activity: new InstanceActivity({ instances: store, fleet, now: () => clock.now(), log }),
    lock: new RedisPoolLock(redis, prefix),
    fleet,
    preemptions: new PreemptionWindow(redis, prefix),
    backlog,
    warm,
    clock,
    log,
  });
  const history = await watchStates(store, POOL);
  o.disposers.push(async () => {
    warm.close();
    await history.close();
    await store.close();
    await redis.quit();
  });
  const rules = { b2g: overflowSchema.parse({ pool: POOL }) };
  return {
    clock,
    store,
    provider,
    fleet,
    backlog,
    scaler,
    rules,
    logs,
    history,
    async tick() {
      await scaler.tick(rules, AbortSignal.timeout(10_000));
      await history.flush();
    },
  };
}
