import type { Logger } from '../lib';
import { isPendingLaunch, type InstanceRecord, type InstanceState } from './instance';
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
  const listed = await provider.list(signal);
  const records = await store.list(pool);
  const { machines, settled } = await settleLaunches(provider, listed, records, now, signal);
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
      clientToken: r?.clientToken ?? settled.tokenOf.get(m.id) ?? null,
      reason: r ? `provider reports ${m.state} while spillway had ${r.state}` : settled.tokenOf.has(m.id) ? 'launched before a restart, found by its ClientToken' : 'adopted from the provider',
    }, { expectedVersion: r?.version ?? 0 });
    changes.push(`${m.id}: ${r ? `${r.state} -> ${state}` : `adopted as ${state}`}`);
  }
  const present = new Set(machines.map((m) => m.id));
  for (const id of settled.forget) {
    await store.remove(pool, id);
    changes.push(`${id}: launch settled, pending record removed`);
  }
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

/**
 * Launches recorded as pending whose master never saw the answer (it crashed, or lost Redis
 * mid-call: the scale-up that made them holds the pool lock, as this reconcile does, so none
 * is in flight now). What each ClientToken made is looked up and adopted like any listed
 * machine, and its pending records go; a token that made nothing is kept for the listing's
 * lag, still counting against the pool's cap, so a launch EC2 has not listed yet is not made
 * a second time.
 */
async function settleLaunches(
  provider: Provider,
  listed: Machine[],
  records: readonly InstanceRecord[],
  now: number,
  signal: AbortSignal,
): Promise<{ machines: Machine[]; settled: { tokenOf: Map<string, string>; forget: string[] } }> {
  const pending = records.filter((r) => isPendingLaunch(r.id));
  const tokenOf = new Map<string, string>();
  if (pending.length === 0) return { machines: listed, settled: { tokenOf, forget: [] } };
  const tokens = [...new Set(pending.map((r) => r.clientToken).filter((t): t is string => !!t))];
  const machines = [...listed];
  const found = provider.launched && tokens.length > 0 ? await provider.launched(tokens, signal) : new Map<string, Machine[]>();
  const seen = new Set(listed.map((m) => m.id));
  for (const [token, made] of found) {
    for (const m of made) {
      tokenOf.set(m.id, token);
      if (!seen.has(m.id)) machines.push(m);
    }
  }
  const forget = pending.filter((r) => (found.get(r.clientToken ?? '')?.length ?? 0) > 0 || now - r.since >= LISTING_LAG_MS).map((r) => r.id);
  return { machines, settled: { tokenOf, forget } };
}
