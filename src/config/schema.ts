import { z } from 'zod';
import { JOB_TYPE_NAME, overflowSchema, poolSchema, POOL_NAME, posInt } from './pool-schema';

const port = () =>
  z.number({ error: 'expected a port number (0-65535)' }).int().min(0).max(65535);

export const jobTypeSchema = z
  .object({
    /** Shown on the dashboard and in `spillway status`. */
    description: z.string().optional(),
    /** Timeout for a build whose payload names none. @defaultValue 3600 */
    timeoutSec: posInt().default(3600),
    /** Attempts for jobs submitted through the API or `spillway submit`. @defaultValue 3 */
    attempts: posInt().default(3),
    /** Without a rule the type never gets cloud capacity. */
    overflow: overflowSchema.optional(),
  })
  .strict();

export const configSchema = z
  .object({
    redis: z
      .object({
        url: z.string().regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL').default('redis://127.0.0.1:6379'),
        /** BullMQ's key prefix; producers must use the same one. @defaultValue 'bull' */
        queuePrefix: z.string().min(1).default('bull'),
        /** Prefix of spillway's own keys (build records, logs). @defaultValue 'spillway' */
        keyPrefix: z.string().min(1).default('spillway'),
      })
      .strict()
      .prefault({}),
    http: z
      .object({
        host: z.string().min(1).default('127.0.0.1'),
        port: port().default(8080),
        /** Largest accepted request body. @defaultValue 1048576 */
        bodyLimitBytes: posInt().default(1024 * 1024),
      })
      .strict()
      .prefault({}),
    agents: z
      .object({
        /** Bind the agent listener to the VPN address in production. @defaultValue '0.0.0.0' */
        host: z.string().min(1).default('0.0.0.0'),
        port: port().default(8081),
        /** Shared secret every agent presents. Required; or set SPILLWAY_AGENT_TOKEN. */
        token: z.string({ error: 'required (or set SPILLWAY_AGENT_TOKEN)' }).min(8, 'must be at least 8 characters'),
        /** How often agents send a heartbeat. @defaultValue 5 */
        heartbeatSec: z.number({ error: 'expected a positive number' }).positive().default(5),
        /** An agent silent for this long is lost and its builds are retried. @defaultValue 20 */
        lostAfterSec: z.number({ error: 'expected a positive number' }).positive().default(20),
        /** An agent must say hello within this time after connecting. @defaultValue 10 */
        helloTimeoutSec: z.number({ error: 'expected a positive number' }).positive().default(10),
        /** Frames larger than this close the connection (1009). @defaultValue 1048576 */
        maxFrameBytes: posInt().default(1024 * 1024),
      })
      .strict(),
    jobTypes: z
      .record(
        z.string().regex(JOB_TYPE_NAME, 'job type names are letters, digits, "_", "-" and "."'),
        jobTypeSchema.prefault({}),
      )
      .refine((r) => Object.keys(r).length > 0, 'at least one job type is required'),
    pools: z.record(z.string().regex(POOL_NAME, 'pool names are letters, digits, "_", "-" and "."'), poolSchema).default({}),
    /** The content-addressed store and action cache served at /cas/ and /ac/ (off without `dir`). */
    cas: z
      .object({
        /** Where blobs and the index live. */
        dir: z.string().min(1).optional(),
        /** Total size the store keeps; least recently used blobs are evicted past it. @defaultValue 10240 */
        maxSizeMb: posInt().default(10_240),
        /** Largest single blob accepted (413 above). @defaultValue 1024 */
        maxBlobMb: posInt().default(1024),
        /** Path prefix before /cas/ and /ac/, e.g. "/cache". @defaultValue none */
        prefix: z.string().regex(/^\/[A-Za-z0-9_\/-]*[A-Za-z0-9_-]$/, 'a path like "/cache"').optional(),
        /** Bearer tokens (or Basic passwords) clients must present; none = open (inside the VPN). */
        tokens: z.array(z.string().min(8, 'tokens must be at least 8 characters')).default([]),
      })
      .strict()
      .prefault({}),
    /** Mutating HTTP routes (rules) need this bearer token; without it they are refused. */
    adminToken: z.string().min(8, 'must be at least 8 characters').optional(),
    builds: z
      .object({
        /** How many finished build records to keep. @defaultValue 1000 */
        keep: posInt().default(1000),
        /** Log bytes kept per build; the rest is cut with a marker. @defaultValue 1048576 */
        logMaxBytes: posInt().default(1024 * 1024),
        /** Lock on a job a master holds while its build runs; renewed at half. @defaultValue 30000 */
        lockMs: posInt().default(30_000),
      })
      .strict()
      .prefault({}),
    dashboard: z
      .object({
        /** How often a history sample (backlog, instances, waits) is taken and instance-hours accrue. @defaultValue 60 */
        sampleSec: z.number({ error: 'expected a positive number' }).min(1).default(60),
        /** History kept in Redis and drawn by the charts. @defaultValue 24 */
        historyHours: posInt().default(24),
        /** Shown next to prices. @defaultValue 'USD' */
        currency: z.string().min(1).max(8).default('USD'),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
        /** auto: readable lines on a terminal, JSON lines otherwise. @defaultValue 'auto' */
        format: z.enum(['json', 'pretty', 'auto']).default('auto'),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    for (const [type, t] of Object.entries(c.jobTypes)) {
      if (t.overflow && !c.pools[t.overflow.pool]) {
        ctx.addIssue({ code: 'custom', path: ['jobTypes', type, 'overflow', 'pool'], message: `unknown pool "${t.overflow.pool}"` });
      }
    }
    for (const [name, p] of Object.entries(c.pools)) {
      for (const t of p.jobTypes ?? []) {
        if (!c.jobTypes[t]) ctx.addIssue({ code: 'custom', path: ['pools', name, 'jobTypes'], message: `unknown job type "${t}"` });
      }
    }
  });

/** The validated, defaulted, frozen configuration of a master. */
export type Config = z.output<typeof configSchema>;
export type JobTypeConfig = z.output<typeof jobTypeSchema>;

