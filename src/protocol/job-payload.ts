import { z } from 'zod';
import { actionSchema, remoteActionSchema } from './action';

const requirementsSchema = z
  .object({
    /** `process.platform` of the agent, e.g. "linux". */
    os: z.string().min(1).optional(),
    /** `process.arch` of the agent, e.g. "x64", "arm64". */
    arch: z.string().min(1).optional(),
    /** The pool the agent came from (its pool token); on-prem agents with a default token have none. */
    pool: z.string().min(1).optional(),
    cpus: z.number().int().positive().optional(),
    memoryMb: z.number().int().positive().optional(),
    /** Every label must be among the agent's labels. */
    labels: z.array(z.string().min(1)).optional(),
  })
  .strict();

/**
 * A build's environment. Names are checked here, with a reason, because the alternative is
 * worse: an `=` in a name silently becomes part of the value in the child's environment, and a
 * NUL (in a name or a value) makes Node's spawn throw at the agent instead of failing the job
 * at the door.
 */
export const envSchema = z.record(z.string(), z.string()).superRefine((env, ctx) => {
  for (const [name, value] of Object.entries(env)) {
    const shown = JSON.stringify(name);
    // No path below `env`: the name itself may be what is wrong, and it is quoted instead.
    if (name === '') ctx.addIssue({ code: 'custom', message: 'a name is empty' });
    if (name.includes('=')) ctx.addIssue({ code: 'custom', message: `name ${shown} contains "="` });
    if (name.includes('\0')) ctx.addIssue({ code: 'custom', message: `name ${shown} contains a NUL byte` });
    if (value.includes('\0')) ctx.addIssue({ code: 'custom', message: `the value of ${shown} contains a NUL byte` });
  }
});

/**
 * The data of a BullMQ job in a job type's queue: what any producer, in any language, puts
 * there. Exactly one of `argv` (run directly) or `shell` (run by /bin/sh -c).
 */
export const jobPayloadSchema = z
  .object({
    /** If present, must name the queue the job is in. */
    type: z.string().min(1).optional(),
    argv: z.array(z.string()).min(1, 'argv needs at least the program').optional(),
    shell: z.string().min(1).optional(),
    env: envSchema.optional(),
    /** Relative to the build's work directory. */
    cwd: z
      .string()
      .refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), 'must stay inside the work directory')
      .optional(),
    timeoutSec: z.number().int().positive().optional(),
    requirements: requirementsSchema.optional(),
    /** Run as a cacheable action: inputs from and outputs to the CAS, result in the action cache. */
    action: actionSchema.optional(),
    /** Run as a REAPI action (see remoteActionSchema); the Execution service submits these. */
    remoteAction: remoteActionSchema.optional(),
    /** Limits the build runs under on the agent (cgroups where available, else rlimits). */
    resources: z
      .object({
        cpus: z.number().positive().optional(),
        memoryMb: z.number().int().positive().optional(),
        pids: z.number().int().positive().optional(),
        /** How far the build's work dir may grow, in MiB; past it the build ends with outcome `disk`. */
        diskMb: z.number().int().positive().optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((p) => (p.argv === undefined) !== (p.shell === undefined), {
    message: 'exactly one of "argv" or "shell" is required',
  })
  .refine((p) => !p.action || p.argv !== undefined, { message: 'an action needs "argv" (its digest covers the exact command)' })
  .refine((p) => !p.remoteAction || p.argv !== undefined, { message: 'a remote action needs "argv" (its Command\'s arguments)' })
  .refine((p) => !(p.action && p.remoteAction), { message: 'a job is either an "action" or a "remoteAction", not both' });

export type JobPayload = z.output<typeof jobPayloadSchema>;
export type Requirements = z.output<typeof requirementsSchema>;

export type PayloadCheck = { ok: true; payload: JobPayload } | { ok: false; reason: string };

/** Validates job data from a queue; the reason names every problem with its path. */
export function checkJobPayload(data: unknown, queue: string): PayloadCheck {
  const r = jobPayloadSchema.safeParse(data);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'data'}: ${i.message}`);
    return { ok: false, reason: `invalid job data: ${problems.join('; ')}` };
  }
  if (r.data.type !== undefined && r.data.type !== queue) {
    return { ok: false, reason: `invalid job data: type "${r.data.type}" does not match queue "${queue}"` };
  }
  return { ok: true, payload: r.data };
}
