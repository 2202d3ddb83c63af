import { z } from 'zod';
import { LOG_EVENTS } from '../lib';

/** What the master sends a cache worker first: everything it needs, secrets included (never argv). */
export const workerInit = z.object({
  t: z.literal('init'),
  index: z.number().int().min(0),
  /** The disk store's root (`cas.dir`). */
  storeRoot: z.string().min(1),
  actionCacheRoot: z.string().min(1),
  maxBlobBytes: z.number().int().positive(),
  memoryCacheBytes: z.number().int().min(0),
  /** `cas.rawHits`: memory-tier hits answered before node:http. */
  rawHits: z.boolean(),
  prefix: z.string().optional(),
  auth: z.object({ tokens: z.array(z.string()), readTokens: z.array(z.string()), anonymous: z.enum(['none', 'read', 'read-write']) }),
  bodyLimitBytes: z.number().int().positive(),
  /** Where requests that are not the cache's go: the master's own HTTP listener. */
  master: z.object({ host: z.string(), port: z.number().int().min(1).max(65535) }),
});
export type WorkerInit = z.infer<typeof workerInit>;

/** A connection handed over: the socket travels as the message's handle, `head` is what the master read of it. */
export const workerConnection = z.object({ t: z.literal('conn'), head: z.string() });

/** Worker to master, besides the store's own messages. */
export const workerNotice = z.discriminatedUnion('t', [
  z.object({ t: z.literal('ready') }),
  z.object({ t: z.literal('log'), level: z.enum(['error', 'warn', 'info', 'debug']), event: z.enum(LOG_EVENTS), fields: z.record(z.string(), z.unknown()) }),
]);
export type WorkerNotice = z.infer<typeof workerNotice>;
