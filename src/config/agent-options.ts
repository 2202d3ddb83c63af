import { z } from 'zod';
import { ConfigError } from '../lib';
import { formatIssues } from './load';
import { JOB_TYPE_NAME } from './pool-schema';

const agentOptionsSchema = z
  .object({
    master: z.string().regex(/^wss?:\/\/[^/]+/, 'expected a ws:// or wss:// URL of the master\'s agent listener'),
    token: z.string({ error: 'required (--token or SPILLWAY_AGENT_TOKEN)' }).min(1, 'required (--token or SPILLWAY_AGENT_TOKEN)'),
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'agent names are letters, digits, "_", "-" and "."'),
    location: z.enum(['onprem', 'cloud'], { error: 'expected "onprem" or "cloud"' }).default('onprem'),
    jobTypes: z.array(z.string().regex(JOB_TYPE_NAME, 'not a valid job type name')).min(1, 'at least one job type'),
    executors: z.number({ error: 'expected a positive integer' }).int().positive().default(1),
    labels: z.array(z.string().min(1)).default([]),
    instanceId: z.string().min(1).optional(),
    /** EC2's instance metadata service, watched for spot interruption and rebalance notices. @defaultValue 'http://169.254.169.254' */
    imdsUrl: z.string().regex(/^https?:\/\//, 'expected an http:// URL').default('http://169.254.169.254'),
    /** How often a cloud agent on EC2 asks IMDS for notices (AWS suggests every 5 s). @defaultValue 5 */
    noticePollSec: z.number({ error: 'expected a positive number' }).positive().default(5),
    /** Overrides of what the agent detects about its machine. */
    os: z.string().min(1).optional(),
    cpus: z.number().int().positive().optional(),
    memoryMb: z.number().int().positive().optional(),
    /** Where builds run; each gets a fresh directory below it. */
    workDir: z.string().min(1).optional(),
    /**
     * The agent's own files, out of builds' reach (0700): build output the master has not
     * confirmed yet, once it is too large for memory. @defaultValue a temp dir, removed on stop
     */
    stateDir: z.string().min(1).optional(),
    /** The master's CAS (e.g. http://master:8080/cache): needed to run actions. */
    casUrl: z.string().regex(/^https?:\/\//, 'expected an http:// or https:// URL').optional(),
    casToken: z.string().min(1).optional(),
    /** The agent's local CAS cache; kept across restarts. @defaultValue a dir in the temp dir */
    cacheDir: z.string().min(1).optional(),
    /** Size of the local cache. @defaultValue 10240 */
    cacheMaxMb: z.number().int().positive().default(10_240),
    /** Disk limit (MiB) of a build when neither its job nor its job type names one. @defaultValue none */
    buildDiskMb: z.number({ error: 'expected a positive integer' }).int().positive().optional(),
    /** `auto`: a loop-mounted image per build where the agent can mount one, else `watch`. @defaultValue 'auto' */
    diskLimit: z.enum(['auto', 'watch'], { error: 'expected "auto" or "watch"' }).default('auto'),
    /** How often a build's disk use is measured against its limit. @defaultValue 1000 */
    diskPollMs: z.number({ error: 'expected a positive integer' }).int().positive().default(1000),
    /**
     * Free space (MiB) the agent keeps on its work and cache filesystems: below it the local
     * cache evicts, and if that is not enough the agent takes no builds until space is back.
     * @defaultValue 1024
     */
    minFreeMb: z.number({ error: 'expected a non-negative integer' }).int().nonnegative().default(1024),
    /** How often free space is checked. @defaultValue 5 */
    diskCheckSec: z.number({ error: 'expected a positive number' }).positive().default(5),
    /**
     * CPU ceiling for all builds of this agent together, as a share of the machine's cores
     * (0.95 = 95%), enforced by a cgroup. @defaultValue none
     */
    buildCpuMax: z.number({ error: 'expected a number in (0, 1]' }).positive().max(1, 'at most 1 (100% of the cores)').optional(),
    /**
     * Between SIGTERM and SIGKILL to a build's process group when it is cancelled or times
     * out: the time a build has to clean up. @defaultValue 10
     */
    killGraceSec: z.number({ error: 'expected a positive number of seconds' }).positive().max(3600).default(10),
    /** An action whose input tree is deeper than this fails (a hostile tree is cheap to send). @defaultValue 256 */
    inputMaxDepth: z.number({ error: 'expected a positive integer' }).int().positive().default(256),
    /** An action whose input tree has more files, directories and symlinks than this fails. @defaultValue 1000000 */
    inputMaxEntries: z.number({ error: 'expected a positive integer' }).int().positive().default(1_000_000),
    /** PEM CA the wss:// master's certificate is checked against. @defaultValue the system CAs */
    caFile: z.string().min(1).optional(),
    /** PEM client certificate and its key, for a master that requires client certificates. */
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    if ((o.certFile === undefined) !== (o.keyFile === undefined)) {
      ctx.addIssue({ code: 'custom', path: [o.certFile === undefined ? 'certFile' : 'keyFile'], message: '--cert and --key go together' });
    }
    if ((o.caFile ?? o.certFile) !== undefined && !o.master.startsWith('wss://')) {
      ctx.addIssue({ code: 'custom', path: ['master'], message: '--ca, --cert and --key need a wss:// master URL' });
    }
  });

export type AgentOptions = z.output<typeof agentOptionsSchema>;

export function parseAgentOptions(raw: unknown): AgentOptions {
  const r = agentOptionsSchema.safeParse(raw);
  if (!r.success) throw new ConfigError('agent options', formatIssues(r.error.issues));
  return Object.freeze(r.data);
}
