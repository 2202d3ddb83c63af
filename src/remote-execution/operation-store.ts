import type { Redis } from 'ioredis';
import { z } from 'zod';
import { remoteActionSchema } from '../protocol';

/** Operation names are job ids: `ra-` and a UUID (BullMQ ids must not be all digits). */
export const OPERATION_NAME = /^ra-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const recordSchema = z
  .object({
    type: z.string().min(1),
    action: remoteActionSchema,
    doNotCache: z.boolean(),
    /** When Execute submitted the job (epoch ms). */
    submittedAt: z.number(),
  })
  .strict();

/** What Execute remembers of an operation, so WaitExecution finds it from any master, after a restart too. */
export type OperationRecord = z.output<typeof recordSchema>;

/**
 * Operations in Redis: the record written before its job is submitted, and the encoded
 * ExecuteResponse once known (written once; whoever settles first wins, the rest read it).
 * Both expire after `ttlSec`, long past any Bazel build's wait.
 */
export class OperationStore {
  constructor(private readonly d: { redis: Redis; keyPrefix: string; ttlSec: number }) {}

  private key = (name: string) => `${this.d.keyPrefix}:reapi:op:${name}`;

  async create(name: string, rec: OperationRecord): Promise<void> {
    await this.d.redis.set(this.key(name), JSON.stringify(rec), 'EX', this.d.ttlSec);
  }

  /** The record, or undefined for an unknown (or expired, or malformed) name. */
  async get(name: string): Promise<OperationRecord | undefined> {
    if (!OPERATION_NAME.test(name)) return undefined;
    const raw = await this.d.redis.get(this.key(name));
    if (raw === null) return undefined;
    try {
      const r = recordSchema.safeParse(JSON.parse(raw));
      return r.success ? r.data : undefined;
    } catch {
      return undefined;
    }
  }

  /** Stores the response unless one is there; returns the one that stands. */
  async settle(name: string, response: Buffer): Promise<Buffer> {
    const k = `${this.key(name)}:response`;
    const [[, set], [, stored]] = (await this.d.redis.multi().set(k, response.toString('base64'), 'EX', this.d.ttlSec, 'NX').get(k).exec()) as [
      [Error | null, unknown],
      [Error | null, string | null],
    ];
    void set;
    return stored === null ? response : Buffer.from(stored, 'base64');
  }

  async response(name: string): Promise<Buffer | undefined> {
    const stored = await this.d.redis.get(`${this.key(name)}:response`);
    return stored === null ? undefined : Buffer.from(stored, 'base64');
  }
}
