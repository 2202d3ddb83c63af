import { z } from 'zod';
import { JOB_TYPE_NAME, POOL_NAME, posInt } from './pool-schema';

const seconds = () => z.number({ error: 'expected seconds >= 0' }).min(0);

/** A group of identical on-prem agents the simulator replays a trace against. */
const onpremAgentsSchema = z
  .object({
    /** Agent names are `<name>-1`, `<name>-2`, ... @defaultValue 'onprem' */
    name: z.string().min(1).default('onprem'),
    /** How many such agents. @defaultValue 1 */
    count: posInt().default(1),
    jobTypes: z.array(z.string().regex(JOB_TYPE_NAME)).min(1, 'at least one job type'),
    /** @defaultValue 1 */
    executors: posInt().default(1),
    labels: z.array(z.string().min(1)).default([]),
    /** @defaultValue 'linux' */
    os: z.string().min(1).default('linux'),
    /** @defaultValue 'x64' */
    arch: z.string().min(1).default('x64'),
    /** @defaultValue no limit: requirements on cpus never exclude these agents */
    cpus: posInt().optional(),
    /** @defaultValue no limit */
    memoryMb: posInt().optional(),
  })
  .strict();

/** How long a pool's machines take to come up, per way of coming up (defaults: see the simulator). */
const simulatedPoolSchema = z
  .object({
    /** A new instance: launch until its agent registers. @defaultValue ec2 90, local bootDelayMs + 1 */
    launchSec: seconds().optional(),
    /** A stopped instance started again. @defaultValue ec2 60, local bootDelayMs + 1 */
    wakeSec: seconds().optional(),
    /** A hibernated instance resumed. @defaultValue ec2 25, local 1 */
    resumeSec: seconds().optional(),
    /** Instances that exist (suspended) when the trace starts. @defaultValue local: local.preCreated; ec2: 0 */
    preCreated: z.number().int().min(0).optional(),
  })
  .strict();

/** What `spillway simulate` needs beyond a master's config: the on-prem agents and boot times. */
export const simulationSchema = z
  .object({
    /** On-prem agents (they connect to a real master on their own, so its config does not list them). */
    onprem: z.array(onpremAgentsSchema).default([]),
    pools: z.record(z.string().regex(POOL_NAME), simulatedPoolSchema).default({}),
  })
  .strict()
  .prefault({});

export type SimulationConfig = z.output<typeof simulationSchema>;
