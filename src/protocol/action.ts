import { createHash } from 'node:crypto';
import { z } from 'zod';

const digestSchema = z
  .object({ hash: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex digits'), size: z.number().int().min(0) })
  .strict();

const relPath = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith('/') && !p.split('/').some((s) => s === '..' || s === '' || s === '.'), 'must be a plain relative path inside the work directory');

/**
 * Makes a job a cacheable action: its command runs in a fresh directory holding the input
 * tree (a Merkle directory in the CAS), and the declared outputs are stored back in the CAS.
 */
export const actionSchema = z
  .object({
    inputRoot: digestSchema,
    outputFiles: z.array(relPath).default([]),
    outputDirs: z.array(relPath).default([]),
    /** Cache the result even when the command fails. @defaultValue false */
    cacheFailed: z.boolean().default(false),
  })
  .strict();

/**
 * Makes a job a REAPI v2 action (from the gRPC Execution service): the master has read the
 * Action and Command protos and checked that the inputs are in its CAS; the agent materializes
 * the input root (REAPI `Directory` protos), creates the outputs' parent directories, runs the
 * command, uploads the outputs and reports its result as a CAS blob, which the master turns
 * into the REAPI ActionResult. Paths are relative to the job's `cwd` (the working directory).
 */
export const remoteActionSchema = z
  .object({
    /** The Action's digest (the REAPI action-cache key); names the action in logs and results. */
    actionDigest: digestSchema,
    inputRoot: digestSchema,
    outputFiles: z.array(relPath).default([]),
    outputDirs: z.array(relPath).default([]),
    /** REAPI v2.1 `output_paths`: a file or a directory, whichever the command makes. */
    outputPaths: z.array(relPath).default([]),
  })
  .strict();

export type RemoteAction = z.output<typeof remoteActionSchema>;

/** What an action's digest covers: everything that can change what it produces. */
export interface ActionKey {
  argv: readonly string[];
  env: Readonly<Record<string, string>>;
  cwd: string | undefined;
  inputRoot: { hash: string; size: number };
  outputFiles: readonly string[];
  outputDirs: readonly string[];
  timeoutSec: number | undefined;
  resources: Readonly<Record<string, number | undefined>> | undefined;
}

/**
 * The action digest: SHA-256 of a canonical JSON document (keys in the order of ActionKey,
 * env entries and output paths sorted, no whitespace), so clients in any language compute
 * the same key for the same work and identical work is never executed twice.
 */
export function actionDigestOf(k: ActionKey): { hash: string; size: number } {
  const canonical = JSON.stringify([
    'spillway.action/v1',
    k.argv,
    Object.keys(k.env)
      .sort()
      .map((name) => [name, k.env[name]]),
    k.cwd ?? '',
    [k.inputRoot.hash, k.inputRoot.size],
    [...k.outputFiles].sort(),
    [...k.outputDirs].sort(),
    k.timeoutSec ?? 0,
    k.resources ? Object.keys(k.resources).sort().map((r) => [r, k.resources![r] ?? null]) : [],
  ]);
  const bytes = Buffer.from(canonical);
  return { hash: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
}
