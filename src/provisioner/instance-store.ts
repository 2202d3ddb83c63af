import type { Redis } from 'ioredis';
import { NotFoundError, RepeatLog, runScript, SpillwayError, type Clock, type Logger } from '../lib';
import { INSTANCE_STATES, isPendingLaunch, type InstanceRecord, type InstanceState } from './instance';
import { allowedFrom, eventFields, transition, type InstanceEvent } from './instance-state';
import { ChangeHub, type InstanceChange } from './change-hub';
import { ADOPT_SCRIPT } from './lua/adopt-script';
import { APPLY_SCRIPT } from './lua/apply-script';
import { CLAIM_WAKE_SCRIPT } from './lua/claim-wake-script';

export type { InstanceChange } from './change-hub';

/** Fields a caller may set alongside a transition; the state machine owns the rest. */
export type InstanceFields = Partial<Omit<InstanceRecord, 'id' | 'pool' | 'state' | 'since' | 'version'>>;

/** What `apply()` and `adopt()` did: the record after the change, or why nothing changed. */
export type ApplyResult =
  | { ok: true; record: InstanceRecord; previous: InstanceState | undefined }
  | { ok: false; record: InstanceRecord | undefined; reason: string };

export interface InstanceStoreOptions {
  /** A client without ioredis' own `keyPrefix` option; it is duplicated once for SUBSCRIBE. */
  redis: Redis;
  /** Prefix of every key and channel, e.g. `spillway`. */
  keyPrefix: string;
  clock: Pick<Clock, 'now'>;
  /** Where subscriber connection errors go. @defaultValue they are dropped */
  log?: Logger;
  /**
   * Told of every change this store made (not other masters'), with the state it left: the
   * master counts wakes, launches, suspensions and failures from it without double counting.
   * A launch's pending records are not told: they stand for instances asked for, and the ones
   * EC2 gives are told when recorded.
   */
  onChange?: (pool: string, record: InstanceRecord, previous: InstanceState | undefined) => void;
}

/** `waitFor()` was pending (or called) while or after the store closed. */
export class InstanceStoreClosedError extends SpillwayError {
  readonly code = 'SPILLWAY_E_INSTANCE_STORE_CLOSED';
  readonly disposition = 'fatal';
}

/**
 * The per-pool instance state machine, kept in Redis and shared by all masters. Every change
 * is an atomic compare-and-set following `transition()`'s table and is published on the
 * pool's changes channel, which `waitFor()` listens to.
 *
 * Keys: `<prefix>:pool:<pool>:instances` (set of ids), `<prefix>:pool:<pool>:instance:<id>`
 * (hash; null stored as '', booleans as '1'/'0'); channel `<prefix>:pool:<pool>:changes`
 * carries {@link InstanceChange} JSON.
 */
export class InstanceStore {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly clock: Pick<Clock, 'now'>;
  private readonly changes: ChangeHub;
  private readonly waiters = new Set<(err: Error) => void>();
  private closed = false;

  constructor(private readonly opts: InstanceStoreOptions) {
    this.redis = opts.redis;
    this.prefix = opts.keyPrefix;
    this.clock = opts.clock;
    this.changes = new ChangeHub(() => opts.redis.duplicate({ enableAutoPipelining: false }), opts.log && new RepeatLog(opts.log, opts.clock));
  }

  /** The pub/sub channel every change of `pool` is published on. */
  changesChannel(pool: string): string {
    return `${this.prefix}:pool:${pool}:changes`;
  }

  /** Every instance of the pool, sorted by id. */
  async list(pool: string): Promise<InstanceRecord[]> {
    const ids = await this.redis.smembers(this.setKey(pool));
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(this.instanceKey(pool, id));
    const replies = (await pipeline.exec()) ?? [];
    const records: InstanceRecord[] = [];
    for (const [err, hash] of replies) {
      if (err) throw err;
      // An id whose hash is gone (removed between SMEMBERS and HGETALL) is simply not there.
      const record = decodeHash(hash as Record<string, string>);
      if (record) records.push(record);
    }
    return records.sort(byId);
  }

  async get(pool: string, id: string): Promise<InstanceRecord | undefined> {
    return decodeHash(await this.redis.hgetall(this.instanceKey(pool, id)));
  }

  /**
   * Moves the instance along `transition()`'s table, atomically: only if its current state is
   * one `event` may leave from (`launch` only if it does not exist yet, and creates it). Sets
   * `since`, bumps `version`, sets the event's own fields (`registered` → agent, `jobs-done` →
   * lastJobEndedAt, `stopped` → hibernated, and every event → reason, its own or null)
   * over `fields`, and publishes the change. A refusal changes nothing.
   */
  async apply(pool: string, id: string, event: InstanceEvent, fields: InstanceFields = {}): Promise<ApplyResult> {
    const from = allowedFrom(event.type);
    const create = from.length === 0;
    const next = nextState(event);
    let set: InstanceFields & Partial<InstanceRecord> = { ...pickFields(fields), ...eventFields(event) };
    if (create) set = { ...NEW_INSTANCE, ...set, id, pool };
    const reply = await runScript(
      this.redis,
      APPLY_SCRIPT,
      [this.instanceKey(pool, id), this.setKey(pool)],
      [this.changesChannel(pool), id, next, this.clock.now(), create ? '1' : '0', from.length, ...from, ...encodeFields(set)],
    );
    return this.told(pool, toResult(reply, (current) => refusal(current, event)));
  }

  /**
   * Inserts or overwrites a whole record (the reconciler adopting what the provider reports),
   * stored under `pool` and `record.id`; `record.version` is ignored and the stored one bumped.
   * With `expectedVersion` (0: must not exist) it only writes if nobody changed it meanwhile.
   */
  async adopt(pool: string, record: InstanceRecord, opts: { expectedVersion?: number } = {}): Promise<ApplyResult> {
    const { version: _ignored, ...rest } = record;
    const reply = await runScript(
      this.redis,
      ADOPT_SCRIPT,
      [this.instanceKey(pool, record.id), this.setKey(pool)],
      [this.changesChannel(pool), record.id, opts.expectedVersion ?? '', ...encodeFields({ ...rest, pool })],
    );
    return this.told(pool, toResult(reply, (_state, found) => `expected version ${opts.expectedVersion ?? 'any'}, found ${found?.version ?? 'no record'}`));
  }

  /**
   * Claims up to `count` suspended instances for waking — hibernated first (they resume
   * fastest), then by id — moving them to `waking` in one atomic step. However many callers
   * race, each instance is claimed once; only its claimer may call the provider's start. The
   * candidates come from `among` when the caller has just read the pool (the script checks
   * each one's state again, so a stale entry is simply not claimed).
   */
  async claimWake(pool: string, count: number, among?: readonly InstanceRecord[]): Promise<InstanceRecord[]> {
    if (count <= 0) return [];
    const from = allowedFrom('wake');
    const candidates = (among ?? (await this.list(pool))).filter((r) => from.includes(r.state)).sort(wakeOrder);
    if (candidates.length === 0) return [];
    const reply = await runScript(
      this.redis,
      CLAIM_WAKE_SCRIPT,
      candidates.map((r) => this.instanceKey(pool, r.id)),
      [this.changesChannel(pool), count, nextState({ type: 'wake' }), this.clock.now(), from.length, ...from],
    );
    const claimed = (reply as unknown[]).map((flat) => mustDecode(flat));
    const before = new Map(candidates.map((r) => [r.id, r.state]));
    for (const r of claimed) this.opts.onChange?.(pool, r, before.get(r.id));
    return claimed;
  }

  private told(pool: string, result: ApplyResult): ApplyResult {
    if (result.ok && result.record.state !== result.previous && !isPendingLaunch(result.record.id)) this.opts.onChange?.(pool, result.record, result.previous);
    return result;
  }

  /**
   * Resolves with the record once `predicate` holds for it (at once if it already does),
   * woken by the pool's changes channel rather than polling. Rejects with the signal's reason
   * on abort, NotFoundError if the instance does not exist or is removed, and
   * InstanceStoreClosedError on `close()`.
   */
  waitFor(pool: string, id: string, predicate: (r: InstanceRecord) => boolean, signal: AbortSignal): Promise<InstanceRecord> {
    if (this.closed) return Promise.reject(new InstanceStoreClosedError('instance store is closed'));
    if (signal.aborted) return Promise.reject(signal.reason);
    const channel = this.changesChannel(pool);
    return new Promise<InstanceRecord>((resolve, reject) => {
      let settled = false;
      let checking = false;
      let again = false;
      const finish = (settle: () => void) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        this.waiters.delete(onClose);
        this.changes.off(channel, onChange);
        settle();
      };
      // Changes that arrive during a read coalesce into one more read, which sees them all.
      const check = async () => {
        if (checking) return void (again = true);
        checking = true;
        try {
          do {
            again = false;
            const record = await this.get(pool, id);
            if (settled) return;
            if (!record) return finish(() => reject(new NotFoundError(`no instance ${id} in pool ${pool}`)));
            if (predicate(record)) return finish(() => resolve(record));
          } while (again);
        } catch (err) {
          finish(() => reject(err));
        } finally {
          checking = false;
        }
      };
      const onChange = (changed: string | undefined) => void ((changed === undefined || changed === id) && check());
      const onAbort = () => finish(() => reject(signal.reason));
      const onClose = (err: Error) => finish(() => reject(err));
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(onClose);
      // Read only once subscribed: a change between the read and the SUBSCRIBE would be missed.
      this.changes.on(channel, onChange).then(
        () => check(),
        (err: unknown) => finish(() => reject(err)),
      );
    });
  }

  /** Deletes the instance (a terminated one cleaned up) and publishes `state: null`. */
  async remove(pool: string, id: string): Promise<void> {
    const change: InstanceChange = { id, state: null, version: 0 };
    await this.redis
      .multi()
      .del(this.instanceKey(pool, id))
      .srem(this.setKey(pool), id)
      .publish(this.changesChannel(pool), JSON.stringify(change))
      .exec();
  }

  /** Rejects pending `waitFor()`s and closes the subscriber connection; the injected client stays open. */
  async close(): Promise<void> {
    this.closed = true;
    for (const reject of [...this.waiters]) reject(new InstanceStoreClosedError('instance store closed'));
    await this.changes.close();
  }

  private setKey(pool: string): string {
    return `${this.prefix}:pool:${pool}:instances`;
  }

  private instanceKey(pool: string, id: string): string {
    return `${this.prefix}:pool:${pool}:instance:${id}`;
  }
}

/** The fields of a record `launch` creates, before the caller's own. */
const NEW_INSTANCE: InstanceFields = { privateIp: null, spot: false, hibernated: false, agent: null, lastJobEndedAt: null, reason: null, clientToken: null };
const SETTABLE = Object.keys(NEW_INSTANCE) as (keyof InstanceFields)[];

/** Where `event` leads, from the one transition table. */
function nextState(event: InstanceEvent): InstanceState {
  const from = allowedFrom(event.type);
  const t = transition(from.length === 0 ? undefined : from[0], event);
  if (!t.ok) throw new Error(`transition table has no target for ${event.type}: ${t.reason}`);
  return t.next;
}


/** Drops keys the state machine owns, since callers may pass wider objects than the type says. */
function pickFields(fields: InstanceFields): InstanceFields {
  const out: Record<string, unknown> = {};
  for (const k of SETTABLE) if (fields[k] !== undefined) out[k] = fields[k];
  return out as InstanceFields;
}

/** The one place Lua result codes become results: refusal reasons come from `transition()`. */
function refusal(current: InstanceState | undefined, event: InstanceEvent): string {
  const t = transition(current, event);
  return t.ok ? `${event.type} refused in state ${current ?? '(none)'}` : t.reason;
}

function toResult(reply: unknown, reasonFor: (current: InstanceState | undefined, record: InstanceRecord | undefined) => string): ApplyResult {
  const [code, state, flat] = reply as [string, string, unknown];
  const record = decodeFlat(flat);
  if (code === 'OK') return { ok: true, record: mustDecode(flat), previous: state === '' ? undefined : (state as InstanceState) };
  return { ok: false, record, reason: reasonFor(record?.state, record) };
}

function encodeFields(fields: Partial<InstanceRecord>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    out.push(k, v === null ? '' : typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
  }
  return out;
}

function decodeFlat(flat: unknown): InstanceRecord | undefined {
  const arr = flat as string[];
  const hash: Record<string, string> = {};
  for (let i = 0; i + 1 < arr.length; i += 2) hash[arr[i]!] = arr[i + 1]!;
  return decodeHash(hash);
}

function mustDecode(flat: unknown): InstanceRecord {
  const record = decodeFlat(flat);
  if (!record) throw new Error('instance script returned no record');
  return record;
}

function decodeHash(h: Record<string, string>): InstanceRecord | undefined {
  if (h.state === undefined || h.id === undefined) return undefined;
  if (!(INSTANCE_STATES as readonly string[]).includes(h.state)) throw new Error(`instance ${h.id} has unknown state "${h.state}"`);
  const str = (v: string | undefined) => (v === undefined || v === '' ? null : v);
  const num = (v: string | undefined) => (v === undefined || v === '' ? null : Number(v));
  return {
    id: h.id,
    pool: h.pool ?? '',
    state: h.state as InstanceState,
    since: num(h.since) ?? 0,
    version: num(h.version) ?? 0,
    privateIp: str(h.privateIp),
    spot: h.spot === '1',
    hibernated: h.hibernated === '1',
    agent: str(h.agent),
    lastJobEndedAt: num(h.lastJobEndedAt),
    reason: str(h.reason),
    ...(h.clientToken ? { clientToken: h.clientToken } : {}),
  };
}

function byId(a: InstanceRecord, b: InstanceRecord): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function wakeOrder(a: InstanceRecord, b: InstanceRecord): number {
  return a.hibernated !== b.hibernated ? (a.hibernated ? -1 : 1) : byId(a, b);
}
