import { allowedFrom, eventFields, isPendingLaunch, transition, type InstanceEvent, type InstanceRecord, type InstanceState, type Instances, type ReconcileStore } from '../provisioner';

/** Instance-hours per pool, split as the bill is: running (any state with a machine up) and suspended. */
export interface InstanceUsage {
  runningMs: number;
  suspendedMs: number;
  wakes: number;
  launches: number;
}

const SUSPENDED: ReadonlySet<InstanceState> = new Set(['suspended']);

/**
 * The instance store of the simulation: the same transitions as Redis' (the one table of
 * instance-state.ts decides every change), in memory, and counting the time each instance
 * spends up or suspended. The fields each event sets mirror InstanceStore's.
 */
export class SimInstances implements Instances, ReconcileStore {
  private readonly pools = new Map<string, Map<string, InstanceRecord>>();
  /** Each pool's records sorted, until its next change: scalers list a pool several times a step. */
  private readonly sorted = new Map<string, readonly InstanceRecord[]>();
  readonly usage = new Map<string, InstanceUsage>();

  constructor(private readonly now: () => number) {}

  private pool(name: string): Map<string, InstanceRecord> {
    let p = this.pools.get(name);
    if (!p) this.pools.set(name, (p = new Map()));
    return p;
  }

  private use(pool: string): InstanceUsage {
    let u = this.usage.get(pool);
    if (!u) this.usage.set(pool, (u = { runningMs: 0, suspendedMs: 0, wakes: 0, launches: 0 }));
    return u;
  }

  /** Sorted by id, as InstanceStore lists them. */
  async list(pool: string): Promise<InstanceRecord[]> {
    return this.snapshot(pool);
  }

  /** Shared until the pool's next change: read it, never change it. */
  snapshot(pool: string): InstanceRecord[] {
    let s = this.sorted.get(pool);
    if (!s) this.sorted.set(pool, (s = [...this.pool(pool).values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))));
    return s as InstanceRecord[];
  }

  async get(pool: string, id: string): Promise<InstanceRecord | undefined> {
    return this.pool(pool).get(id);
  }

  async apply(pool: string, id: string, event: InstanceEvent, fields: Partial<InstanceRecord> = {}): Promise<{ ok: boolean; record?: InstanceRecord; reason?: string }> {
    const current = this.pool(pool).get(id);
    const t = transition(current?.state, event);
    if (!t.ok) return { ok: false, ...(current && { record: current }), reason: t.reason };
    const base: InstanceRecord = current ?? { id, pool, state: t.next, since: 0, version: 0, privateIp: null, spot: false, hibernated: false, agent: null, lastJobEndedAt: null, reason: null };
    const { id: _i, pool: _p, state: _s, since: _t, version: _v, ...settable } = fields;
    const record: InstanceRecord = { ...base, ...settable, ...eventFields(event), state: t.next, since: this.now(), version: base.version + 1 };
    this.account(pool, current);
    // A launch's pending records (written before the provider call) stand for instances asked for, not made.
    if (event.type === 'launch' && !isPendingLaunch(id)) this.use(pool).launches++;
    this.pool(pool).set(id, record);
    this.sorted.delete(pool);
    return { ok: true, record };
  }

  /** Hibernated first, then by id: InstanceStore's order. */
  async claimWake(pool: string, count: number): Promise<InstanceRecord[]> {
    const from = allowedFrom('wake');
    const candidates = this.snapshot(pool)
      .filter((r) => from.includes(r.state))
      .sort((a, b) => (a.hibernated !== b.hibernated ? (a.hibernated ? -1 : 1) : a.id < b.id ? -1 : 1))
      .slice(0, Math.max(0, count));
    const out: InstanceRecord[] = [];
    for (const r of candidates) {
      const res = await this.apply(pool, r.id, { type: 'wake' });
      if (res.ok && res.record) out.push(res.record);
    }
    this.use(pool).wakes += out.length;
    return out;
  }

  async adopt(pool: string, record: InstanceRecord): Promise<{ ok: boolean }> {
    this.account(pool, this.pool(pool).get(record.id));
    this.pool(pool).set(record.id, { ...record, pool, version: (this.pool(pool).get(record.id)?.version ?? 0) + 1 });
    this.sorted.delete(pool);
    return { ok: true };
  }

  async remove(pool: string, id: string): Promise<void> {
    this.account(pool, this.pool(pool).get(id));
    this.pool(pool).delete(id);
    this.sorted.delete(pool);
  }

  /** Closes the books at the end of the run: every instance's current state counts until now. */
  settle(): void {
    for (const [pool, records] of this.pools) {
      for (const [id, r] of records) {
        this.account(pool, r);
        records.set(id, { ...r, since: this.now() });
      }
      this.sorted.delete(pool);
    }
  }

  private account(pool: string, r: InstanceRecord | undefined): void {
    if (!r || r.state === 'terminated' || isPendingLaunch(r.id)) return;
    const ms = this.now() - r.since;
    if (SUSPENDED.has(r.state)) this.use(pool).suspendedMs += ms;
    else this.use(pool).runningMs += ms;
  }
}
