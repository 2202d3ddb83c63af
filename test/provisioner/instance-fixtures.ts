import { Redis } from 'ioredis';
import { systemClock, type Clock } from '../../src/lib';
import type { InstanceRecord, InstanceState } from '../../src/provisioner/instance';
import { InstanceStore } from '../../src/provisioner/instance-store';
import { redisUrl } from '../setup/root-hooks';
import { uniquePrefix } from '../setup/unique';

/** A clock the test moves by hand; only `now()` matters to the store. */
export class ManualClock implements Clock {
  constructor(public t = 1_000_000) {}
  now(): number {
    return this.t;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return systemClock.sleep(ms, signal);
  }
}

/** A store on its own connection and key prefix; `dispose()` closes both. */
export interface StoreFixture {
  store: InstanceStore;
  redis: Redis;
  clock: ManualClock;
  prefix: string;
  /** Another store on another connection, same prefix: a second master. */
  peer(): StoreFixture;
  dispose(): Promise<void>;
}

export function storeFixture(prefix = uniquePrefix('inst'), clock = new ManualClock()): StoreFixture {
  // Named, so a test can find the store's subscriber (a duplicate, same name) in CLIENT LIST.
  const redis = new Redis(redisUrl(), { maxRetriesPerRequest: null, connectionName: prefix });
  const store = new InstanceStore({ redis, keyPrefix: prefix, clock });
  const peers: StoreFixture[] = [];
  return {
    store,
    redis,
    clock,
    prefix,
    peer() {
      const p = storeFixture(prefix, clock);
      peers.push(p);
      return p;
    },
    async dispose() {
      for (const p of peers) await p.dispose();
      await store.close();
      await redis.quit();
    },
  };
}

/** A record in `state`, put there directly (as the reconciler would), version 1. */
export function instance(id: string, state: InstanceState, over: Partial<InstanceRecord> = {}): InstanceRecord {
  return {
    id,
    pool: 'p',
    state,
    since: 0,
    version: 0,
    privateIp: null,
    spot: false,
    hibernated: false,
    agent: null,
    lastJobEndedAt: null,
    reason: null,
    ...over,
  };
}

export async function seed(store: InstanceStore, pool: string, records: InstanceRecord[]): Promise<void> {
  for (const r of records) {
    const res = await store.adopt(pool, r);
    if (!res.ok) throw new Error(`seed ${r.id}: ${res.reason}`);
  }
}
