import type { Redis } from 'ioredis';
import { z } from 'zod';

/** Who cancelled a job, why, and when. */
export interface CancelRequest {
  /** The caller as the API identified it: "submit token 3f9a1c2e", "admin token …", "anonymous (open API)". */
  by: string;
  reason: string | null;
  at: number;
}

const requestSchema = z.object({ by: z.string().max(200), reason: z.string().max(500).nullable(), at: z.number() }).strict();
const announcementSchema = z.object({ type: z.string(), id: z.string(), request: requestSchema }).strict();

/** What is published on {@link cancelChannel} for every cancel of a job some master may hold. */
export interface CancelAnnouncement {
  type: string;
  id: string;
  request: CancelRequest;
}

/** Longer than a job lives in its queue, like client-chosen ids. */
const KEEP_SEC = 30 * 24 * 3600;

/** Where cancels of held jobs are announced to every master of the farm. */
export const cancelChannel = (keyPrefix: string): string => `${keyPrefix}:cancels`;

/**
 * A job's cancel request, kept in Redis (`<keyPrefix>:cancel:<type>:<id>`): the one fact every
 * master checks. It is written before anything else is tried, so a master that takes the job
 * in the very moment of the cancel finds it (see `Dispatcher.cancel`), and a job whose master
 * died meanwhile is cancelled by whichever master takes it next. The first request wins: it
 * is the one that says who cancelled the job.
 */
export class CancelStore {
  constructor(private readonly d: { redis: Pick<Redis, 'get' | 'set' | 'publish'>; keyPrefix: string }) {}

  /** Records `request` unless the job has one already; returns the one that stands. */
  async request(type: string, id: string, request: CancelRequest): Promise<CancelRequest> {
    const set = await this.d.redis.set(this.key(type, id), JSON.stringify(request), 'EX', KEEP_SEC, 'NX');
    if (set === 'OK') return request;
    return (await this.get(type, id)) ?? request;
  }

  async get(type: string, id: string): Promise<CancelRequest | undefined> {
    const raw = await this.d.redis.get(this.key(type, id));
    return raw === null ? undefined : parseJson(raw, requestSchema);
  }

  /** Tells every master; the one holding the job acts on it. */
  async announce(a: CancelAnnouncement): Promise<void> {
    await this.d.redis.publish(cancelChannel(this.d.keyPrefix), JSON.stringify(a));
  }

  private key(type: string, id: string): string {
    return `${this.d.keyPrefix}:cancel:${type}:${id}`;
  }
}

/** An announcement as received; undefined for anything else on the channel. */
export function parseAnnouncement(raw: string): CancelAnnouncement | undefined {
  return parseJson(raw, announcementSchema);
}

function parseJson<T>(raw: string, schema: z.ZodType<T>): T | undefined {
  try {
    const r = schema.safeParse(JSON.parse(raw));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The failed reason of a cancelled job, and its build record's reason: "cancelled by submit
 * token 3f9a1c2e: superseded". It starts with "cancelled", which is how `submit --wait` and
 * the job view tell a cancelled job from a failed one.
 */
export function cancelReasonText(r: Pick<CancelRequest, 'by' | 'reason'>): string {
  return `cancelled by ${r.by}${r.reason ? `: ${r.reason}` : ''}`;
}

/** Whether a job's failed reason says it was cancelled through the API. */
export const isCancelReason = (failedReason: string | null | undefined): boolean => (failedReason ?? '').startsWith('cancelled by ');
