import type { Redis } from 'ioredis';
import { runScript } from '../lib';
import { BUILD_OUTCOMES } from '../protocol';
import type { Location } from './agent-registry';
import { APPEND_LOG_SCRIPT } from './lua/append-log-script';
import { BUILD_FINISHED_SCRIPT } from './lua/build-finished-script';
import { BUILD_STARTED_SCRIPT } from './lua/build-started-script';

/** `preempted`: the machine went away after a spot notice; the job was requeued without using an attempt. */
export const BUILD_RESULT_NAMES = [...BUILD_OUTCOMES, 'lost', 'cancelled', 'preempted'] as const;
export type BuildResultName = (typeof BUILD_RESULT_NAMES)[number];

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
  /** A remote (REAPI) action's result, `hash/size` of its CAS blob, when the agent reported one. */
  actionResult?: string;
}

/** A piece of a stored log: where it starts (bytes) and when the master received it (ms). */
export interface LogMark {
  offset: number;
  at: number;
}

/** Which builds a page of `GET /api/builds` shows; `result` "running" for builds not finished. */
export interface BuildFilter {
  type?: string;
  location?: Location;
  result?: BuildResultName | 'running';
}

/** A page of builds, newest first; `next` continues after its last row (null: no more). */
export interface BuildPage {
  builds: BuildRecord[];
  next: string | null;
}

/** Index entries read per round trip while filtering, and at most per page (a page may come back short, with `next`). */
const PAGE_BATCH = 200;
const PAGE_SCAN = 5000;

/** What is known of a build when it is handed to an agent. */
export type BuildIdentity = Pick<BuildRecord, 'id' | 'type' | 'attempt' | 'agent' | 'location' | 'instanceId' | 'queuedAt' | 'dispatchedAt'>;

export interface BuildEnding {
  startedAt: number | null;
  finishedAt: number;
  result: BuildResultName;
  exitCode: number | null;
  signal: string | null;
  reason: string | null;
  /** `hash/size` of a remote action's result blob. */
  actionResult?: string;
}

/** What the dispatcher writes and reads of build records (the store, or a fake in tests). */
export type BuildRecords = Pick<BuildStore, 'started' | 'finished' | 'preemptions' | 'countPreemption' | 'appendLog' | 'get' | 'attempts'>;

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
  /**
   * The trim under way. Trims read the index's size and then delete its oldest members, so two
   * at once delete the same records twice; at 1,000 agents they overlapped by the dozen and
   * held thousands of DEL/HDEL commands (and their promises) in the master at its peak.
   */
  private trimming: Promise<void> | undefined;

  constructor(private readonly opts: BuildStoreOptions) {
    this.r = opts.redis;
    this.p = opts.keyPrefix;
  }

  private key = (type: string, id: string, attempt: number) => `${this.p}:build:${type}:${id}:${attempt}`;
  private logKey = (type: string, id: string, attempt: number) => `${this.p}:log:${type}:${id}:${attempt}`;
  private marksKey = (type: string, id: string, attempt: number) => `${this.p}:logmarks:${type}:${id}:${attempt}`;
  private attemptsKey = (type: string, id: string) => `${this.p}:attempts:${type}:${id}`;
  private preemptionsKey = (type: string, id: string) => `${this.p}:preemptions:${type}:${id}`;
  private get indexKey() {
    return `${this.p}:builds`;
  }

  /** The running record, written once the agent reports the build started (one round trip per build). */
  async started(b: BuildIdentity, startedAt: number): Promise<void> {
    const k = this.key(b.type, b.id, b.attempt);
    const fields = { ...identityFields(b), state: 'running', startedAt, waitMs: Math.max(0, startedAt - b.queuedAt), logBytes: 0 };
    const keys = [k, this.logKey(b.type, b.id, b.attempt), this.marksKey(b.type, b.id, b.attempt), this.indexKey, this.attemptsKey(b.type, b.id)];
    await runScript(this.r, BUILD_STARTED_SCRIPT, keys, [...this.indexArgs(b), ...pairs(fields)]);
    // Counted on while a trim runs: the next start after it trims what arrived meanwhile.
    if (++this.sinceTrim >= 100 && !this.trimming) {
      this.sinceTrim = 0;
      this.trimming = this.trim().finally(() => (this.trimming = undefined));
      await this.trimming;
    }
  }

  /**
   * Writes the whole finished record in one script call. It does not rely on `started`
   * having been written: a master killed right after handing out a job never wrote it.
   */
  async finished(b: BuildIdentity, f: BuildEnding): Promise<BuildRecord> {
    const k = this.key(b.type, b.id, b.attempt);
    const rec = finishedRecord(b, f, 0);
    const fields: Record<string, string | number> = { ...identityFields(b), state: 'finished' };
    for (const key of ['startedAt', 'finishedAt', 'waitMs', 'durationMs', 'result', 'exitCode', 'signal', 'reason'] as const) {
      fields[key] = rec[key] ?? '';
    }
    if (f.actionResult !== undefined) fields.actionResult = f.actionResult;
    const keys = [k, this.indexKey, this.attemptsKey(b.type, b.id)];
    rec.logBytes = Number(await runScript(this.r, BUILD_FINISHED_SCRIPT, keys, [...this.indexArgs(b), ...pairs(fields)]));
    return rec;
  }

  /** The index score and member and the attempts entry, as the record scripts take them. */
  private indexArgs(b: BuildIdentity): Array<string | number> {
    return [b.dispatchedAt, `${b.type}:${b.id}:${b.attempt}`, b.attempt, b.agent];
  }

  /** How many of the job's runs were preempted (they number its builds but not its BullMQ attempts). */
  async preemptions(type: string, id: string): Promise<number> {
    return Number((await this.r.get(this.preemptionsKey(type, id))) ?? 0);
  }

  /**
   * Counts one more preempted run (`delta` -1 takes back a count whose requeue failed). Kept a
   * month, far beyond any job's life in a queue, so it never needs cleaning up.
   */
  async countPreemption(type: string, id: string, delta: 1 | -1): Promise<void> {
    const k = this.preemptionsKey(type, id);
    await this.r.multi().incrby(k, delta).expire(k, 30 * 24 * 3600).exec();
  }

  /**
   * Appends build output; past `logMaxBytes` the rest is dropped behind one marker line. With
   * `offset` (where `data` starts in the build's output, in bytes) output already stored is
   * skipped. `at` (when it arrived) is kept beside the log as a time mark, see `logMarks`.
   * Resolves to how far the build's output is stored, the offset to confirm.
   */
  async appendLog(type: string, id: string, attempt: number, data: string, offset: number | undefined, at: number): Promise<number> {
    const keys = [this.key(type, id, attempt), this.logKey(type, id, attempt), this.marksKey(type, id, attempt)];
    return Number(await runScript(this.r, APPEND_LOG_SCRIPT, keys, [data, offset ?? '', this.opts.logMaxBytes, TRUNCATED, at]));
  }

  /**
   * When each piece of the stored log arrived: byte offsets into `readLog`'s text (as UTF-8),
   * ascending. A line's time is that of the mark at or before its first byte.
   */
  async logMarks(type: string, id: string, attempt: number): Promise<LogMark[]> {
    const raw = await this.r.lrange(this.marksKey(type, id, attempt), 0, -1);
    const out: LogMark[] = [];
    for (const m of raw) {
      const [offset, at] = m.split(' ').map(Number);
      if (Number.isFinite(offset) && Number.isFinite(at)) out.push({ offset: offset!, at: at! });
    }
    return out;
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

  /**
   * Builds older than the cursor `before` (a previous page's `next`), filtered, newest first.
   * The cursor names the last row shown, so builds started meanwhile never shift the pages.
   * Without a cursor, `offset` index entries are skipped first (the older API's paging).
   */
  async page(limit: number, before: string | undefined, filter: BuildFilter = {}, offset = 0): Promise<BuildPage> {
    let start = offset;
    if (before !== undefined) {
      const cut = before.indexOf(':');
      const score = before.slice(0, cut);
      const rank = await this.r.zrevrank(this.indexKey, before.slice(cut + 1));
      // Gone (trimmed as too old): continue after every build dispatched at or after it.
      start = rank !== null ? rank + 1 : await this.r.zcount(this.indexKey, score, '+inf');
    }
    const out: BuildRecord[] = [];
    let last: string | null = null;
    for (let scanned = 0; scanned < PAGE_SCAN && out.length < limit; scanned += PAGE_BATCH) {
      const raw = await this.r.zrevrange(this.indexKey, start + scanned, start + scanned + PAGE_BATCH - 1, 'WITHSCORES');
      if (raw.length === 0) return { builds: out, next: null };
      const members: Array<{ member: string; score: string }> = [];
      for (let i = 0; i < raw.length; i += 2) members.push({ member: raw[i]!, score: raw[i + 1]! });
      const wanted = filter.type === undefined ? members : members.filter((m) => m.member.startsWith(`${filter.type}:`));
      const pipe = this.r.pipeline();
      for (const m of wanted) pipe.hgetall(`${this.p}:build:${m.member}`);
      const rows = (await pipe.exec()) ?? [];
      const byMember = new Map(wanted.map((m, i) => [m.member, rows[i]?.[1] as Record<string, string> | undefined]));
      for (const m of members) {
        last = `${m.score}:${m.member}`;
        const h = byMember.get(m.member);
        if (!h?.id) continue;
        const rec = fromHash(h);
        if (matches(rec, filter)) out.push(rec);
        if (out.length >= limit) return { builds: out, next: last };
      }
      if (raw.length < PAGE_BATCH * 2) return { builds: out, next: null };
    }
    return { builds: out, next: last };
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
      pipe.del(`${this.p}:build:${m}`, `${this.p}:log:${m}`, `${this.p}:logmarks:${m}`);
      pipe.hdel(this.attemptsKey(head.slice(0, sep), head.slice(sep + 1)), m.slice(cut + 1));
    }
    pipe.zrem(this.indexKey, ...old);
    await pipe.exec();
  }
}

function identityFields(b: BuildIdentity): Record<string, string | number> {
  return {
    id: b.id,
    type: b.type,
    attempt: b.attempt,
    agent: b.agent,
    location: b.location,
    instanceId: b.instanceId ?? '',
    queuedAt: b.queuedAt,
    dispatchedAt: b.dispatchedAt,
  };
}

function pairs(fields: Record<string, string | number>): Array<string | number> {
  const out: Array<string | number> = [];
  for (const [k, v] of Object.entries(fields)) out.push(k, v);
  return out;
}

function matches(r: BuildRecord, f: BuildFilter): boolean {
  if (f.type !== undefined && r.type !== f.type) return false;
  if (f.location !== undefined && r.location !== f.location) return false;
  if (f.result !== undefined && (f.result === 'running' ? r.state !== 'running' : r.result !== f.result)) return false;
  return true;
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
    ...(h.actionResult && { actionResult: h.actionResult }),
  };
}

/** A finished build's record: its wait and duration are derived from the ending's times. */
export function finishedRecord(b: BuildIdentity, f: BuildEnding, logBytes: number): BuildRecord {
  return {
    ...b,
    state: 'finished',
    startedAt: f.startedAt,
    finishedAt: f.finishedAt,
    waitMs: f.startedAt === null ? null : Math.max(0, f.startedAt - b.queuedAt),
    durationMs: f.startedAt === null ? null : Math.max(0, f.finishedAt - f.startedAt),
    result: f.result,
    exitCode: f.exitCode,
    signal: f.signal,
    reason: f.reason,
    logBytes,
    ...(f.actionResult !== undefined && { actionResult: f.actionResult }),
  };
}
