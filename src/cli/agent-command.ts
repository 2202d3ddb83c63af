import { readFileSync } from 'node:fs';
import { parseAgentOptions, type AgentOptions } from '../config';
import { detectIsolation } from '../executor';
import { ConfigError, createLogger } from '../lib';
import { Agent, fetchInstanceId, type AgentTls } from '../slave-agent';
import { onShutdownSignal } from './shutdown';

export interface AgentFlags {
  master: string;
  token?: string;
  name: string;
  location?: string;
  jobTypes: string;
  executors?: string;
  labels?: string;
  instanceId?: string;
  imdsUrl?: string;
  noticePollSec?: string;
  workDir?: string;
  cas?: string;
  casToken?: string;
  cacheDir?: string;
  ca?: string;
  cert?: string;
  key?: string;
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
  logFormat?: 'json' | 'pretty' | 'auto';
  isolation?: 'auto' | 'off';
}

/** `spillway agent`: serves builds until SIGTERM, then drains (finishes running builds) and exits 0. */
export async function agentCommand(flags: AgentFlags, env: NodeJS.ProcessEnv): Promise<number> {
  const list = (s: string | undefined) => (s ? s.split(',').map((x) => x.trim()).filter(Boolean) : undefined);
  // On EC2 the agent learns its instance id from the instance metadata service (IMDSv2).
  const instanceId = flags.instanceId === 'imds' ? await fetchInstanceId({ baseUrl: flags.imdsUrl }) : flags.instanceId;
  const options = parseAgentOptions({
    master: flags.master,
    token: flags.token,
    name: flags.name,
    location: flags.location,
    jobTypes: list(flags.jobTypes),
    executors: flags.executors === undefined ? undefined : Number(flags.executors),
    labels: list(flags.labels),
    instanceId,
    imdsUrl: flags.imdsUrl,
    noticePollSec: flags.noticePollSec === undefined ? undefined : Number(flags.noticePollSec),
    workDir: flags.workDir,
    casUrl: flags.cas,
    casToken: flags.casToken,
    cacheDir: flags.cacheDir,
    caFile: flags.ca,
    certFile: flags.cert,
    keyFile: flags.key,
  });
  const log = createLogger({ level: flags.logLevel ?? 'info', format: flags.logFormat ?? 'auto' }).child({ agent: options.name });
  const baseEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && k !== 'SPILLWAY_AGENT_TOKEN' && k !== 'SPILLWAY_CAS_TOKEN') baseEnv[k] = v;
  // Detected once: the log says which limits this machine can enforce for jobs that ask.
  const isolation = flags.isolation === 'off' ? undefined : await detectIsolation({ log });
  const tls = readAgentTls(options);
  const agent = new Agent({ options, log, baseEnv, ...(isolation && { isolation }), ...(tls && { tls }) });
  const running = agent.start();
  const outcome = await Promise.race([running.then(() => 'stopped' as const), onShutdownSignal()]);
  if (outcome !== 'stopped') {
    process.stderr.write(`spillway agent: ${outcome}: draining (finishing ${agent.runningJobs().length} running build(s))\n`);
    await agent.drain();
  }
  await running;
  return 0;
}

/** Read once at start: a missing or unreadable file is a usage error, not a reconnect loop. */
function readAgentTls(o: AgentOptions): AgentTls | undefined {
  const problems: string[] = [];
  const read = (flag: string, path: string | undefined): Buffer | undefined => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      problems.push(`${flag}: cannot read ${path}: ${(err as Error).message}`);
      return undefined;
    }
  };
  const tls = { ca: read('--ca', o.caFile), cert: read('--cert', o.certFile), key: read('--key', o.keyFile) };
  if (problems.length > 0) throw new ConfigError('agent options', problems);
  const given = Object.fromEntries(Object.entries(tls).filter(([, v]) => v !== undefined)) as AgentTls;
  return Object.keys(given).length > 0 ? given : undefined;
}
