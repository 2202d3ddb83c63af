import { z } from 'zod';
import { posInt } from './pool-schema';

/**
 * `cas.s3`: a bucket behind the local CAS and action cache, written through and read back on a
 * local miss (README: "An S3 tier"). Credentials come from the AWS SDK's default chain
 * (environment, shared config, instance or task role), never from this file.
 */
export const casS3Schema = z
  .object({
    /** The bucket; it must exist (spillway never creates or configures it). */
    bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'an S3 bucket name (3-63 of a-z, 0-9, "." and "-")'),
    /** Key prefix, so one bucket can hold several caches: path segments ending in "/". @defaultValue '' */
    prefix: z
      .string()
      .regex(/^([A-Za-z0-9_.-]+\/)*$/, 'path segments of A-Z, a-z, 0-9, "_", "." and "-", each ending in "/", e.g. "spillway/cache/"')
      .refine((p) => !p.split('/').some((s) => s === '.' || s === '..'), 'no "." or ".." segments')
      .default(''),
    /** The bucket's region. @defaultValue 'us-east-1' */
    region: z.string().min(1).default('us-east-1'),
    /** An S3-compatible server or a VPC endpoint instead of AWS's own. @defaultValue AWS S3 */
    endpoint: z.url().optional(),
    /** The bucket in the path, not the host name (most S3-compatible servers want it). @defaultValue false */
    forcePathStyle: z.boolean().default(false),
    /** Uploads waiting at most; past it a write stays local only (counted and logged). @defaultValue 100000 */
    maxQueued: posInt().default(100_000),
    /** Uploads in flight at once. @defaultValue 4 */
    uploadConcurrency: posInt().max(64).default(4),
    /** Longest one S3 call may take, in ms. @defaultValue 30000 */
    timeoutMs: posInt().default(30_000),
  })
  .strict();

export type CasS3Config = z.output<typeof casS3Schema>;
