import { z } from 'zod';
import { JOB_TYPE_NAME } from './pool-schema';

const jobTypeName = () => z.string().regex(JOB_TYPE_NAME, 'job type names are letters, digits, "_", "-" and "."');

/**
 * Where REAPI Execute requests go: a job type per `instance_name`, and one for every other
 * instance name (Bazel sends "" unless `--remote_instance_name` is given). Without a default,
 * an instance name not listed is refused with INVALID_ARGUMENT.
 */
export const remoteExecutionSchema = z
  .object({
    /** Job type of remote actions whose instance name is not in `instances`. @defaultValue none */
    defaultJobType: jobTypeName().optional(),
    /** instance_name -> job type. @defaultValue {} */
    instances: z.record(z.string(), jobTypeName()).default({}),
    /** How long an operation's record (and its result) stays in Redis for WaitExecution. @defaultValue 86400 */
    operationTtlSec: z.number().int().positive().default(86_400),
  })
  .strict()
  .prefault({});

export type RemoteExecutionConfig = z.output<typeof remoteExecutionSchema>;
