import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/** What a client-chosen job id was first submitted with. */
export interface SubmissionEntry {
  type: string;
  /** sha256 of the job type, the validated payload, attempts and priority. */
  digest: string;
}

/**
 * How long a client-chosen job id is remembered: far beyond a job's life in its queue and the
 * build records' usual reach, so a CI script retrying a submission days later still gets the
 * job it made instead of a second build.
 */
const KEEP_SEC = 30 * 24 * 3600;

/**
 * Client-chosen job ids (idempotency keys), kept apart from BullMQ's job: BullMQ dedupes an id
 * only while the job is in its queue, and finished jobs are removed from it (builds.keep).
 */
export class SubmissionKeys {
  constructor(private readonly d: { redis: Pick<Redis, 'get' | 'set'>; keyPrefix: string }) {}

  async get(id: string): Promise<SubmissionEntry | undefined> {
    const raw = await this.d.redis.get(this.key(id));
    return raw === null ? undefined : parseEntry(raw);
  }

  /**
   * Remembers `entry` unless the id is taken; returns what the id stands for now, and whether
   * this call took it (of concurrent submissions of one id, exactly one does).
   */
  async remember(id: string, entry: SubmissionEntry): Promise<{ entry: SubmissionEntry; taken: boolean }> {
    const set = await this.d.redis.set(this.key(id), JSON.stringify(entry), 'EX', KEEP_SEC, 'NX');
    if (set === 'OK') return { entry, taken: true };
    return { entry: (await this.get(id)) ?? entry, taken: false };
  }

  private key(id: string): string {
    return `${this.d.keyPrefix}:job-id:${id}`;
  }
}

export function submissionDigest(type: string, data: unknown, attempts: number, priority: number | undefined): string {
  return createHash('sha256')
    .update(canonical({ type, data, attempts, priority: priority || null }))
    .digest('hex');
}

/** JSON with object keys sorted, so equal payloads give equal digests whatever their key order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`).join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}

function parseEntry(raw: string): SubmissionEntry | undefined {
  try {
    const v = JSON.parse(raw) as Partial<SubmissionEntry>;
    return typeof v.type === 'string' && typeof v.digest === 'string' ? { type: v.type, digest: v.digest } : undefined;
  } catch {
    return undefined;
  }
}
