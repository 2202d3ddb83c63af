import { parseAgentOptions } from '../config';
import { detectIsolation } from '../executor';
import { createLogger } from '../lib';
import { Agent, fetchInstanceId } from '../slave-agent';
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
  workDir?: string;
  cas?: string;
  casToken?: string;
  cacheDir?: string;
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
    workDir: flags.workDir,
    casUrl: flags.cas,
    casToken: flags.casToken,
    cacheDir: flags.cacheDir,
  });
  const log = createLogger({ level: flags.logLevel ?? 'info', format: flags.logFormat ?? 'auto' }).child({ agent: options.name });
  const baseEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && k !== 'SPILLWAY_AGENT_TOKEN' && k !== 'SPILLWAY_CAS_TOKEN') baseEnv[k] = v;
  // Detected once: the log says which limits this machine can enforce for jobs that ask.
  const isolation = flags.isolation === 'off' ? undefined : await detectIsolation({ log });
  const agent = new Agent({ options, log, baseEnv, ...(isolation && { isolation }) });
  const running = agent.start();
  const outcome = await Promise.race([running.then(() => 'stopped' as const), onShutdownSignal()]);
  if (outcome !== 'stopped') {
    process.stderr.write(`spillway agent: ${outcome}: draining (finishing ${agent.runningJobs().length} running build(s))\n`);
    await agent.drain();
  }
  await running;
  return 0;
}
