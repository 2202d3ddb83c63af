import { z } from 'zod';

const port = () => z.number({ error: 'expected a port number (0-65535)' }).int().min(0).max(65535);

/**
 * The REAPI v2 gRPC listener (Capabilities, ContentAddressableStorage, ByteStream,
 * ActionCache; Execution when registered). It serves the same store as /cas/ and /ac/, so it
 * runs whenever `cas.dir` is set, with the cache's tokens.
 */
export const grpcSchema = z
  .object({
    /** Turn the listener off while keeping the HTTP cache. @defaultValue true */
    enabled: z.boolean().default(true),
    /** Loopback by default, like the HTTP API. @defaultValue '127.0.0.1' */
    host: z.string().min(1).default('127.0.0.1'),
    /** Env: SPILLWAY_GRPC_PORT. @defaultValue 8980 */
    port: port().default(8980),
    /**
     * Largest sum of blob sizes in one BatchUpdateBlobs / BatchReadBlobs (advertised as
     * max_batch_total_size_bytes; clients use ByteStream above it). gRPC messages may be this
     * plus 1 MiB of framing. @defaultValue 4194304
     */
    maxBatchBytes: z.number().int().min(64 * 1024).max(64 * 1024 * 1024).default(4 * 1024 * 1024),
    /** grpcs: files of the PEM certificate (chain) and its key; Bazel then uses grpcs://. */
    tls: z
      .object({
        cert: z.string().min(1),
        key: z.string().min(1),
      })
      .strict()
      .optional(),
  })
  .strict()
  .prefault({});

export type GrpcConfig = z.output<typeof grpcSchema>;
