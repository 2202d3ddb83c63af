import type { Redis } from 'ioredis';
import type { BuildOutcome } from '../protocol';
import type { Location } from './agent-registry';

export type BuildResultName = BuildOutcome | 'lost' | 'cancelled';

/** One attempt of one job on one agent: the row of `GET /api/builds`. */
export interface BuildRecord {
  id: string;
  type: string;
  attempt: number;
  agent: string;
  location: Location;
  instanceId: string | null;
  state: 'running' | 'finished';
  queuedAt: number;
  dispatchedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  waitMs: number | null;
  durationMs: number | null;
  result: BuildResultName | null;
  exitCode: number | null;
  signal: string | null;
  reason: string | null;
  logBytes: number;
}

export interface BuildStoreOptions {
  redis: Redis;
  keyPrefix: string;
  /** Finished records kept; older ones (and their logs) are deleted. */
  keep: number;
  logMaxBytes: number;
}

const TRUNCATED = '\n[spillway: log truncated: over the per-build limit]\n';

/** Build records and build logs in Redis, so they survive a master restart and any master can serve them. */
export class BuildStore {
  private readonly r: Redis;
  private readonly p: string;
  private sinceTrim = 0;

  constructor(private readonly opts: BuildStoreOptions) {
    this.r = opts.redis;
    this.p = opts.keyPrefix;
  }

  private key = (type: string, id: string, attempt: number) => `${this.p}:build:${type}:${id}:${attempt}`;
  private logKey = (type: string, id: string, attempt: number) => `${this.p}:log:${type}:${id}:${attempt}`;
  private attemptsKey = (type: string, id: string) => `${this.p}:attempts:${type}:${id}`;
  private get indexKey() {
    return `${this.p}:builds`;
  }

  async dispatched(b: Pick<BuildRecord, 'id' | 'type' | 'attempt' | 'agent' | 'location' | 'instanceId' | 'queuedAt' | 'dispatchedAt'>): Promise<void> {
    const k = this.key(b.type, b.id, b.attempt);
    await this.r
      .multi()
      .del(k, this.logKey(b.type, b.id, b.attempt))
      .hset(k, {
        id: b.id,
        type: b.type,
        attempt: b.attempt,
        agent: b.agent,
        location: b.location,
        instanceId: b.instanceId ?? '',
        state: 'running',
        queuedAt: b.queuedAt,
        dispatchedAt: b.dispatchedAt,
        logBytes: 0,
      })
      .zadd(this.indexKey, b.dispatchedAt, `${b.type}:${b.id}:${b.attempt}`)
      .hset(this.attemptsKey(b.type, b.id), String(b.attempt), b.agent)
      .exec();
    if (++this.sinceTrim >= 100) {
      this.sinceTrim = 0;
      await this.trim();
    }
  }

  async started(type: string, id: string, attempt: number, startedAt: number, queuedAt: number): Promise<void> {
    await this.r.hset(this.key(type, id, attempt), { startedAt, waitMs: Math.max(0, startedAt - queuedAt) });
  }

  async finished(
    type: string,
    id: string,
    attempt: number,
    f: { finishedAt: number; startedAt: number | null; result: BuildResultName; exitCode: number | null; signal: string | null; reason: string | null },
  ): Promise<void> {
    const fields: Record<string, string | number> = {
      state: 'finished',
      finishedAt: f.finishedAt,
      result: f.result,
      exitCode: f.exitCode ?? '',
      signal: f.signal ?? '',
      reason: f.reason ?? '',
    };
    if (f.startedAt !== null) fields.durationMs = Math.max(0, f.finishedAt - f.startedAt);
    await this.r.hset(this.key(type, id, attempt), fields);
  }

  /** Appends build output; past `logMaxBytes` the rest is dropped behind one marker line. */
  async appendLog(type: string, id: string, attempt: number, data: string): Promise<void> {
    const k = this.key(type, id, attempt);
    const bytes = Buffer.byteLength(data);
    const total = await this.r.hincrby(k, 'logBytes', bytes);
    const before = total - bytes;
    if (before >= this.opts.logMaxBytes) return;
    const lk = this.logKey(type, id, attempt);
    if (total <= this.opts.logMaxBytes) {
      await this.r.rpush(lk, data);
    } else {
      const room = this.opts.logMaxBytes - before;
      await this.r.rpush(lk, Buffer.from(data).subarray(0, room).toString(), TRUNCATED);
    }
  }

  async readLog(type: string, id: string, attempt: number): Promise<string> {
    return (await this.r.lrange(this.logKey(type, id, attempt), 0, -1)).join('');
  }

  async get(type: string, id: string, attempt: number): Promise<BuildRecord | undefined> {
    const h = await this.r.hgetall(this.key(type, id, attempt));
    return h.id ? fromHash(h) : undefined;
  }

  /** Every attempt of one job, oldest first. */
  async attempts(type: string, id: string): Promise<BuildRecord[]> {
    const attempts = Object.keys(await this.r.hgetall(this.attemptsKey(type, id)))
      .map(Number)
      .sort((a, b) => a - b);
    const pipe = this.r.pipeline();
    for (const a of attempts) pipe.hgetall(this.key(type, id, a));
    const rows = (await pipe.exec()) ?? [];
    return rows.map(([, h]) => h as Record<string, string>).filter((h) => h && h.id).map(fromHash);
  }

  /** Most recently dispatched first. */
  async recent(limit: number, offset = 0): Promise<BuildRecord[]> {
    const members = await this.r.zrevrange(this.indexKey, offset, offset + limit - 1);
    const pipe = this.r.pipeline();
    for (const m of members) pipe.hgetall(`${this.p}:build:${m}`);
    const rows = (await pipe.exec()) ?? [];
    return rows.map(([, h]) => h as Record<string, string>).filter((h) => h && h.id).map(fromHash);
  }

  private async trim(): Promise<void> {
    const excess = (await this.r.zcard(this.indexKey)) - this.opts.keep;
    if (excess <= 0) return;
    const old = await this.r.zrange(this.indexKey, '0', String(excess - 1));
    const pipe = this.r.pipeline();
    for (const m of old) {
      const cut = m.lastIndexOf(':');
      const head = m.slice(0, cut);
      const sep = head.indexOf(':');
      pipe.del(`${this.p}:build:${m}`, `${this.p}:log:${m}`);
      pipe.hdel(this.attemptsKey(head.slice(0, sep), head.slice(sep + 1)), m.slice(cut + 1));
    }
    pipe.zrem(this.indexKey, ...old);
    await pipe.exec();
  }
}

function num(v: string | undefined): number | null {
  return v === undefined || v === '' ? null : Number(v);
}

function fromHash(h: Record<string, string>): BuildRecord {
  return {
    id: h.id!,
    type: h.type!,
    attempt: Number(h.attempt),
    agent: h.agent!,
    location: h.location as Location,
    instanceId: h.instanceId || null,
    state: h.state as BuildRecord['state'],
    queuedAt: Number(h.queuedAt),
    dispatchedAt: Number(h.dispatchedAt),
    startedAt: num(h.startedAt),
    finishedAt: num(h.finishedAt),
    waitMs: num(h.waitMs),
    durationMs: num(h.durationMs),
    result: (h.result || null) as BuildResultName | null,
    exitCode: num(h.exitCode),
    signal: h.signal || null,
    reason: h.reason || null,
    logBytes: Number(h.logBytes ?? 0),
  };
}
