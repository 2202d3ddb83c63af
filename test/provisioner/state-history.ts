import { Redis } from 'ioredis';
import type { InstanceState } from '../../src/provisioner';
import type { InstanceChange, InstanceStore } from '../../src/provisioner/instance-store';
import { redisUrl } from '../setup/root-hooks';

/** Every state each instance of a pool went through, read from the store's changes channel. */
export interface StateHistory {
  /** States of `id` in publish order (`null`: removed). Call `flush()` first. */
  of(id: string): Array<InstanceState | null>;
  /** Waits until every change published so far has been received. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export async function watchStates(store: InstanceStore, pool: string): Promise<StateHistory> {
  const sub = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  const seen = new Map<string, Array<InstanceState | null>>();
  sub.on('message', (_channel: string, message: string) => {
    const c = JSON.parse(message) as InstanceChange;
    seen.set(c.id, [...(seen.get(c.id) ?? []), c.state]);
  });
  await sub.subscribe(store.changesChannel(pool));
  return {
    of: (id) => seen.get(id) ?? [],
    // A PING's reply comes after every message already sent to this connection.
    flush: async () => void (await sub.ping()),
    close: async () => void (await sub.quit()),
  };
}
