import { z } from 'zod';
import { BUILD_RESULT_NAMES } from '../master';

/*
 * The query schemas of the HTTP API: the routes validate with them and the OpenAPI document
 * (route-docs.ts) is generated from them, so the two cannot drift apart.
 */

export const longPoll = z.object({ waitMs: z.coerce.number().int().min(0).max(30_000).catch(0) });

export const jobQuery = z.object({
  /** The job type, when raw BullMQ ids clash between queues. */
  type: z.string().optional(),
  /** `0` leaves the latest attempt's log out. */
  log: z.enum(['0', '1']).optional(),
});

export const typeQuery = z.object({
  /** The job type, when raw BullMQ ids clash between queues. */
  type: z.string().optional(),
});

export const logTextQuery = z.object({
  type: z.string().optional(),
  /** Which attempt's log (1 is the first). @defaultValue the latest */
  attempt: z.coerce.number().int().min(1).optional(),
});

/** Optional: a cancel may say why. */
export const cancelBody = z.object({ reason: z.string().max(500, 'reason: at most 500 characters').optional() }).strict();

export const logQuery = z.object({
  type: z.string().optional(),
  attempt: z.coerce.number().int().min(0).default(0),
  offset: z.coerce.number().int().min(0).default(0),
  waitMs: z.coerce.number().int().min(0).max(30_000).default(0),
});

const RESULTS = [...BUILD_RESULT_NAMES, 'running'] as const;

export const buildsQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(1000).default(50),
    offset: z.coerce.number().int().min(0).max(100_000).default(0),
    /** A previous page's `next`: "<dispatchedAt>:<type>:<id>:<attempt>". */
    before: z.string().max(400).regex(/^\d{1,16}:[^:]+:[^:]+:\d{1,6}$/, 'not a cursor of GET /api/builds (its "next")').optional(),
    type: z.string().min(1).max(200).optional(),
    location: z.enum(['onprem', 'cloud']).optional(),
    result: z.enum(RESULTS).optional(),
  })
  .refine((q) => q.before === undefined || q.offset === 0, { message: 'use "before" or "offset", not both', path: ['before'] });

export const historyQuery = z.object({ hours: z.coerce.number().positive().max(24 * 14).default(24) });
