import { z } from 'zod';
import { agentsSchema } from './agents-schema';
import { grpcSchema } from './grpc-schema';
import { JOB_TYPE_NAME, overflowSchema, poolSchema, POOL_NAME, posInt } from './pool-schema';
import { casS3Schema } from './cas-s3-schema';
import { crossCheck } from './cross-checks';
import { secretToken } from './secret-token';
import { spotNoticesSchema } from './spot-notices';
import { remoteExecutionSchema } from './remote-execution-schema';
import { redisSchema } from './redis-schema';
import { simulationSchema } from './simulation-schema';

const port = () =>
  z.number({ error: 'expected a port number (0-65535)' }).int().min(0).max(65535);

const jobTypeSchema = z
  .object({
    /** Shown on the dashboard and in `spillway status`. */
    description: z.string().optional(),
    /** Timeout for a build whose payload names none. @defaultValue 3600 */
    timeoutSec: posInt().default(3600),
    /** Disk limit (MiB) of a build whose payload names none (`resources.diskMb`). @defaultValue the agent's `--build-disk-mb` */
    diskMb: posInt().optional(),
    /** Attempts for jobs submitted through the API or `spillway submit`. @defaultValue 3 */
    attempts: posInt().default(3),
    /** Without a rule the type never gets cloud capacity. */
    overflow: overflowSchema.optional(),
    /**
     * Fail a job that no connected agent can run (labels, os, cpus, memory) once it has waited
     * this long. @defaultValue none: it waits, because an agent that can run it may connect
     */
    unrunnableFailAfterSec: posInt().optional(),
  })
  .strict();

export const configSchema = z
  .object({
    redis: redisSchema.prefault({}),
    http: z
      .object({
        host: z.string().min(1).default('127.0.0.1'),
        port: port().default(8080),
        /** Largest accepted request body. @defaultValue 1048576 */
        bodyLimitBytes: posInt().default(1024 * 1024),
        /**
         * Bearer tokens by role (README: "Who can do what"); several per role for a rotation.
         * Env overrides (comma-separated, replacing the list): SPILLWAY_READ_TOKEN,
         * SPILLWAY_SUBMIT_TOKEN, SPILLWAY_ADMIN_TOKEN.
         */
        tokens: z
          .object({
            /** Dashboard, GET routes, /metrics, the event stream. @defaultValue none: reading is open */
            read: z.array(secretToken()).default([]),
            /** `POST /api/jobs`, and reading. @defaultValue none: open only while no admin token is set either */
            submit: z.array(secretToken()).default([]),
            /** Rule changes and every other mutating route; also submits and reads. @defaultValue none: rule changes are off */
            admin: z.array(secretToken()).default([]),
          })
          .strict()
          .prefault({}),
        /**
         * Accept job submissions without a token on a host other than loopback. Without a
         * submit or admin token such a master refuses to start unless this is true.
         * @defaultValue false
         */
        openSubmit: z.boolean().default(false),
        /**
         * Longest wait of an API call for Redis: past it the call answers 503 "Redis
         * unavailable" instead of waiting for the reconnect. Long polls get this on top of
         * their own wait. @defaultValue 3000
         */
        redisTimeoutMs: z.number({ error: 'expected milliseconds (100-60000)' }).int().min(100).max(60_000).default(3000),
      })
      .strict()
      .prefault({}),
    agents: agentsSchema,
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
        /**
         * Memory for hot small blobs (up to 1 MiB each) served without touching the disk; bounds
         * the cache's share of the master's RSS. 0 turns it off. @defaultValue 64
         */
        memoryCacheMb: z.number().int().min(0).default(64),
        /**
         * Processes that serve cache connections besides the master (which keeps the index and
         * serves everything else), so the cache can use more than one core; each holds its own
         * `memoryCacheMb`. 0 serves the cache in the master process. @defaultValue 0
         */
        workers: z.number().int().min(0).max(64).default(0),
        /**
         * Answer memory-tier hits up to 64 KiB (`/cas/` blobs and opaque `/ac/` values) straight
         * from the connection's bytes, before node:http (the README's "Build cache" says which
         * requests); false sends every request through node:http. @defaultValue true
         */
        rawHits: z.boolean().default(true),
        /**
         * When a PUT's blob is fsynced. "before-answer": its file and directory entry are
         * fsynced before the 200 (a 200 survives a power loss). "background": answered after
         * the rename, fsynced in a group within ~20 ms; a power loss can lose blobs answered in
         * that window, which a restarted master then finds missing or corrupt and drops (README,
         * "Build cache"). @defaultValue 'before-answer'
         */
        fsync: z.enum(['before-answer', 'background'], { error: 'expected "before-answer" or "background"' }).default('before-answer'),
        /** Path prefix before /cas/ and /ac/, e.g. "/cache". @defaultValue none */
        prefix: z.string().regex(/^\/[A-Za-z0-9_\/-]*[A-Za-z0-9_-]$/, 'a path like "/cache"').optional(),
        /** Read-write tokens (CI, agents), as Bearer or as the Basic password. Env: SPILLWAY_CAS_TOKEN. @defaultValue none */
        tokens: z.array(secretToken()).default([]),
        /** Read-only tokens (developers' machines). Env: SPILLWAY_CAS_READ_TOKEN. @defaultValue none */
        readTokens: z.array(secretToken()).default([]),
        /**
         * What a client without a token may do: an open action cache is a cache-poisoning hole,
         * so writing needs an explicit "read-write". @defaultValue 'none'
         */
        anonymous: z.enum(['none', 'read', 'read-write'], { error: 'expected "none", "read" or "read-write"' }).default('none'),
        /** A bucket behind the store, shared by every master that names it. @defaultValue none */
        s3: casS3Schema.optional(),
      })
      .strict()
      .prefault({}),
    grpc: grpcSchema,
    /** REAPI Execute: which job type remote actions become (README: "Remote execution"). */
    remoteExecution: remoteExecutionSchema,
    /** EC2's events for every pool's instances, from SQS (off without it). */
    spotNotices: spotNoticesSchema.optional(),
    /**
     * The pace of mutating EC2 requests (Start/Stop/Terminate/RunInstances, every try) per
     * account and region, a token bucket shared by the region's pools. The defaults are EC2's
     * own bucket for mutating actions (200, refilled at 5/s); lower them when other tools
     * spend the same account's allowance.
     */
    ec2RequestRate: z
      .object({
        /** Requests allowed in a burst. @defaultValue 200 */
        burst: posInt().default(200),
        /** Requests earned back per second. @defaultValue 5 */
        perSecond: z.number({ error: 'expected a positive number' }).positive().default(5),
      })
      .strict()
      .prefault({}),
    /** The older spelling of one `http.tokens.admin` entry; added to that list. */
    adminToken: secretToken().optional(),
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
    /** The master process's own memory (README: "Memory"). */
    memory: z
      .object({
        /**
         * How far V8 lets the old generation grow past the live heap before its next full
         * collection, as a percentage (V8's `--heap-growing-percent`): 100 lets it double. 0
         * leaves V8's own factor, which on a large machine lets a busy heap grow up to 4x and
         * so most of the master's peak RSS is garbage. 30 because at 1,000 agents the faster
         * dispatch (settle-and-take) promotes more short-lived garbage per second, and 100 left
         * the peak at ~215 MiB (README, Memory). Applied at start and on SIGHUP. Env:
         * SPILLWAY_HEAP_GROWING_PERCENT. @defaultValue 30
         */
        heapGrowingPercent: z.number({ error: 'expected a percentage (0-1000)' }).int().min(0).max(1000).default(30),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
        /** auto: readable lines on a terminal, JSON lines otherwise. @defaultValue 'auto' */
        format: z.enum(['json', 'pretty', 'auto']).default('auto'),
        /**
         * Repeats of one error (every reconnect attempt during a Redis outage) are folded into
         * one line per this many seconds, with their count. @defaultValue 60
         */
        repeatWindowSec: z.number({ error: 'expected a positive number' }).positive().default(60),
      })
      .strict()
      .prefault({}),
    /** `spillway simulate` only: the on-prem agents and boot times a trace is replayed against. */
    simulation: simulationSchema,
  })
  .strict()
  .superRefine(crossCheck, { when: () => true })
  .transform(({ adminToken, ...c }) => ({
    ...c,
    http: { ...c.http, tokens: { ...c.http.tokens, admin: [...new Set([...(adminToken === undefined ? [] : [adminToken]), ...c.http.tokens.admin])] } },
  }));

/** The validated, defaulted, frozen configuration of a master. */
export type Config = z.output<typeof configSchema>;

