import type { Logger } from '../lib';
import type { InstanceRecord, InstanceState } from './instance';
import type { Machine, Provider } from './provider';

/** The store operations reconciling needs. */
export interface ReconcileStore {
  list(pool: string): Promise<InstanceRecord[]>;
  /** With `expectedVersion` a compare-and-set: a change another master made meanwhile wins. */
  adopt(pool: string, record: InstanceRecord, opts?: { expectedVersion?: number }): Promise<{ ok: boolean }>;
  remove(pool: string, id: string): Promise<void>;
}

/** How long a freshly launched machine may be missing from the provider's listing. */
const LISTING_LAG_MS = 2 * 60 * 1000;

/** Where a machine the store does not know belongs in our state machine. */
function stateOf(m: Machine): InstanceState | undefined {
  switch (m.state) {
    case 'stopped':
      return 'suspended';
    case 'stopping':
      return 'suspending';
    case 'pending':
    case 'running':
      // Its agent registers (idle) or the boot timeout fails it.
      return 'booting';
    default:
      return undefined;
  }
}

/**
 * Compares the pool's instances in Redis with the provider's own view: adopts machines Redis
 * does not know (e.g. after Redis lost its data), forgets instances the provider no longer has,
 * and marks running-vs-stopped disagreements. Returns one line per change, for the log.
 */
export async function reconcilePool(pool: string, provider: Provider, store: ReconcileStore, now: number, signal: AbortSignal, log: Logger): Promise<string[]> {
  const machines = await provider.list(signal);
  const records = await store.list(pool);
  const known = new Map(records.map((r) => [r.id, r]));
  const changes: string[] = [];
  for (const m of machines) {
    const r = known.get(m.id);
    const state = stateOf(m);
    if (!state) continue;
    // Not 'waking': its machine stays stopped until its one waker's start call lands, and
    // calling it suspended then would let a second master claim it. 'failed' comes back as
    // suspended once its machine is stopped, so it can be woken again.
    const stoppedButAwake = r && m.state === 'stopped' && ['idle', 'busy', 'draining', 'booting', 'failed'].includes(r.state);
    // EC2 falls back to a plain stop where hibernation is refused: take its word for which.
    const hibernationDiffers = r && r.state === 'suspended' && m.state === 'stopped' && r.hibernated !== m.hibernated;
    if (r && !stoppedButAwake && !hibernationDiffers) continue;
    // A machine Redis has never heard of, or one that stopped behind our back (a crash, a
    // spot stop, a human): take the provider's word for it.
    await store.adopt(pool, {
      id: m.id,
      pool,
      state,
      since: now,
      version: r?.version ?? 0,
      privateIp: m.privateIp,
      spot: m.spot,
      hibernated: m.hibernated,
      agent: r?.agent ?? null,
      lastJobEndedAt: r?.lastJobEndedAt ?? null,
      reason: r ? `provider reports ${m.state} while spillway had ${r.state}` : 'adopted from the provider',
    }, { expectedVersion: r?.version ?? 0 });
    changes.push(`${m.id}: ${r ? `${r.state} -> ${state}` : `adopted as ${state}`}`);
  }
  const present = new Set(machines.map((m) => m.id));
  for (const r of records) {
    if (present.has(r.id) || r.state === 'launching') continue;
    // EC2's listings are eventually consistent: a machine launched a moment ago may not be
    // listed yet. Forgetting it would lose a running machine and launch another.
    if (r.state === 'booting' && now - r.since < LISTING_LAG_MS) continue;
    await store.remove(pool, r.id);
    changes.push(`${r.id}: gone from the provider, forgotten`);
  }
  if (changes.length) log.info('instance.adopted', { pool, changes });
  return changes;
}
