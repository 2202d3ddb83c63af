import type cron from 'node-cron';
import { z } from 'zod';
import { secretToken } from './secret-token';
import { regionOfQueueUrl, spotFallbackSchema, spotNoticesSchema } from './spot-notices';
import { vpnPoolSchema } from './vpn-pool-schema';

export const posInt = () => z.number({ error: 'expected a positive integer' }).int().positive();

/** Queue names become Redis key parts and URL segments, so keep them plain. */
export const JOB_TYPE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Pool names become Redis key parts, tag values and URL segments. */
export const POOL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** When and how far a job type may spill over to a cloud pool. */
export const overflowSchema = z
  .object({
    /** The pool that absorbs this type's overflow. */
    pool: z.string().regex(POOL_NAME, 'not a valid pool name'),
    /** Switch overflow off without forgetting the rule. @defaultValue true */
    enabled: z.boolean().default(true),
    /** Backlog (jobs waiting beyond idle on-prem executors) that triggers overflow. @defaultValue 1 */
    minBacklog: posInt().default(1),
    /** Overflow only once the oldest waiting job has waited this long; 0 = at once. @defaultValue 0 */
    minOldestWaitSec: z.number({ error: 'expected a number >= 0' }).min(0).default(0),
    /** Most cloud instances this type may hold in the pool. @defaultValue the pool's maxInstances */
    maxInstances: posInt().optional(),
    /** When the pool's cap binds, higher priority types get instances first. @defaultValue 0 */
    priority: z.number().int().default(0),
  })
  .strict();

const warmWindowSchema = z
  .object({
    /** A cron expression of the minutes the window covers, e.g. "* 8-17 * * 1-5" (08:00-17:59 Mon-Fri). */
    // node-cron is required only to check a window (it costs a master without any ~4 MB resident).
    cron: z.string().refine((e) => (require('node-cron') as typeof cron).validate(e), 'not a valid cron expression'),
    /** IANA time zone the expression is read in. @defaultValue the master's local time */
    timezone: z.string().optional(),
    /** Instances kept awake while the window is open. */
    count: posInt(),
  })
  .strict();

export const poolSchema = z
  .object({
    provider: z.enum(['local', 'ec2'], { error: 'expected "local" or "ec2"' }),
    /** Most instances in the pool, whatever their state. */
    maxInstances: posInt(),
    /** Executors each instance's agent runs. @defaultValue 1 */
    executorsPerInstance: posInt().default(1),
    /**
     * Tokens this pool's (cloud) agents present instead of the default one; such an agent may
     * only register as `cloud` for the pool's job types. During a rotation list `[new, old]`.
     * @defaultValue none: the pool's agents use a default token
     */
    agentTokens: z.array(secretToken()).default([]),
    /** Job types the pool's agents serve; defaults to the types that overflow into it. */
    jobTypes: z.array(z.string().regex(JOB_TYPE_NAME)).optional(),
    /** An idle instance is suspended after this long without backlog. @defaultValue 60 */
    quietPeriodMin: z.number({ error: 'expected a positive number' }).positive().default(60),
    /** A woken or launched instance whose agent has not registered by then has failed. @defaultValue 300 */
    bootTimeoutSec: posInt().default(300),
    /**
     * How often the pool's instance records are compared with the provider's own list (EC2's
     * DescribeInstances: one paged call per pool each time). @defaultValue 60
     */
    reconcileSec: posInt().default(60),
    /** hibernate resumes fastest (falls back to stop where not supported). @defaultValue 'hibernate' */
    suspend: z.enum(['hibernate', 'stop', 'terminate']).default('hibernate'),
    /** Instances kept awake at all times. @defaultValue 0 */
    warmMinimum: z.number().int().min(0).default(0),
    warmWindows: z.array(warmWindowSchema).default([]),
    /** What one instance-hour costs (any currency), for the dashboard's cost figures. */
    price: z
      .object({
        onDemandPerHour: z.number({ error: 'expected a price >= 0' }).min(0),
        /** @defaultValue onDemandPerHour */
        spotPerHour: z.number({ error: 'expected a price >= 0' }).min(0).optional(),
      })
      .strict()
      .optional(),
    /** Local provider: instances are local `spillway agent` processes. */
    local: z
      .object({
        /** Simulated boot time before the agent process starts. @defaultValue 1000 */
        bootDelayMs: z.number().int().min(0).default(1000),
        /** Instances that exist (suspended) when the pool starts. @defaultValue maxInstances */
        preCreated: z.number().int().min(0).optional(),
      })
      .strict()
      .optional(),
    ec2: z
      .object({
        region: z.string().min(1),
        /** A VPC interface endpoint for EC2 reached over the VPN (no internet route). */
        endpoint: z.url().optional(),
        launchTemplate: z
          .object({ id: z.string().optional(), name: z.string().optional(), version: z.string().default('$Latest') })
          .strict()
          .refine((t) => (t.id === undefined) !== (t.name === undefined), 'exactly one of "id" or "name"'),
        subnetIds: z.array(z.string().min(1)).min(1, 'at least one subnet'),
        instanceTypes: z.array(z.string().min(1)).default([]),
        spot: z.boolean().default(false),
        /** Launch on-demand when spot capacity is not available. @defaultValue true */
        spotFallbackToOnDemand: z.boolean().default(true),
        tags: z.record(z.string(), z.string()).default({}),
      })
      .strict()
      .optional(),
    /**
     * An EC2 pool reached only over WireGuard whose launches each get their own peer (keys,
     * address, user-data), added to the hub and removed again on termination.
     */
    vpn: vpnPoolSchema.optional(),
    /** EC2's events for this pool's instances, from SQS (off without it; see also the global one). */
    spotNotices: spotNoticesSchema.optional(),
    /** When repeated preemption sends a job type's launches on-demand (spot pools that allow on-demand). */
    spot: spotFallbackSchema.prefault({}),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (p.provider === 'ec2' && !p.ec2) ctx.addIssue({ code: 'custom', path: ['ec2'], message: 'required for provider "ec2"' });
    if (p.vpn && p.provider !== 'ec2') ctx.addIssue({ code: 'custom', path: ['vpn'], message: 'only for provider "ec2" (its launches carry the peer in their user-data)' });
    const n = p.spotNotices;
    if (n && !n.region && !p.ec2?.region && !regionOfQueueUrl(n.queueUrl)) {
      ctx.addIssue({ code: 'custom', path: ['spotNotices', 'region'], message: 'required: the queue URL names no region' });
    }
  });

export type OverflowRule = z.output<typeof overflowSchema>;
export type PoolConfig = z.output<typeof poolSchema>;
