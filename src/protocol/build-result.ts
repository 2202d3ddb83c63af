import { constants } from 'node:os';
import { z } from 'zod';

/** What happened to one build, as the agent observed it. */
export const buildResultSchema = z
  .object({
    exitCode: z.number().int().nullable(),
    signal: z.string().nullable(),
    timedOut: z.boolean(),
    /** Set when the command could not be started at all (e.g. ENOENT). */
    error: z.string().optional(),
    /**
     * Why the agent failed a build whose command did run: an output that escapes the work
     * directory, outputs that could not be collected or uploaded. `exitCode` is then non-zero.
     */
    failure: z.string().max(4096).optional(),
    /** The kernel's OOM killer ended the build (its memory limit). */
    oomKilled: z.boolean().optional(),
    /** The build's work dir grew past its disk limit (this many MiB) and the build was ended. */
    diskLimitMb: z.number().int().positive().optional(),
    /** Which resource limits were in force, in words (never claims one that was not). */
    limits: z.string().optional(),
    /** For an action: its digest, and whether its result went into the action cache. */
    action: z
      .object({
        hash: z.string(),
        cached: z.boolean(),
        /** A remote action's result (its JSON form, a CAS blob), for the master to turn into a REAPI ActionResult. */
        result: z.object({ hash: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().min(0) }).strict().optional(),
      })
      .strict()
      .optional(),
    startedAt: z.number(),
    finishedAt: z.number(),
  })
  .strict();

export type BuildResult = z.output<typeof buildResultSchema>;

export const BUILD_OUTCOMES = ['success', 'failure', 'timeout', 'signal', 'oom', 'disk', 'error'] as const;
export type BuildOutcome = (typeof BUILD_OUTCOMES)[number];

export function outcomeOf(r: BuildResult): BuildOutcome {
  if (r.error !== undefined) return 'error';
  if (r.diskLimitMb !== undefined) return 'disk';
  if (r.timedOut) return 'timeout';
  if (r.oomKilled) return 'oom';
  if (r.signal !== null) return 'signal';
  return r.exitCode === 0 && r.failure === undefined ? 'success' : 'failure';
}

/** One line for humans and for BullMQ's failedReason: "exited 2", "timed out after 30s"... */
export function describeResult(r: BuildResult, timeoutSec?: number): string {
  switch (outcomeOf(r)) {
    case 'success':
      return 'exited 0';
    case 'failure':
      return r.failure !== undefined ? `${r.failure} (exit code ${r.exitCode})` : `exited ${r.exitCode}`;
    case 'timeout':
      return timeoutSec ? `timed out after ${timeoutSec}s` : 'timed out';
    case 'signal':
      return `killed by ${r.signal}`;
    case 'oom':
      return `out of memory${r.limits ? ` (${r.limits})` : ''}`;
    case 'disk':
      return `disk limit ${r.diskLimitMb} MiB exceeded`;
    case 'error':
      return `could not start: ${r.error}`;
  }
}

/** The exit code a shell would report for this result (128+n for signals). */
export function exitCodeOf(r: BuildResult): number {
  if (r.exitCode !== null) return r.exitCode;
  if (r.timedOut) return 124;
  if (r.signal) {
    const n = signalNumber(r.signal);
    return n ? 128 + n : 1;
  }
  return r.error !== undefined ? 127 : 1;
}

function signalNumber(name: string): number | undefined {
  return (constants.signals as Record<string, number | undefined>)[name];
}
