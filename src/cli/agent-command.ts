import { closeSync, fstatSync, readFileSync, statSync } from 'node:fs';
import { parseAgentOptions, type AgentOptions } from '../config';
import { detectBuildIdentity, detectIsolation } from '../executor';
import { ConfigError, createLogger } from '../lib';
import { Agent, fetchInstanceId, type AgentTls } from '../slave-agent';
import { onShutdownSignal } from './shutdown';

export interface AgentFlags {
  master: string;
  token?: string;
  tokenFile?: string;
  name: string;
  location?: string;
  jobTypes: string;
  executors?: string;
  labels?: string;
  instanceId?: string;
  imdsUrl?: string;
  noticePollSec?: string;
  workDir?: string;
  stateDir?: string;
  cas?: string;
  casToken?: string;
  casTokenFile?: string;
  cacheDir?: string;
  buildUser?: string;
  inputMaxDepth?: string;
  inputMaxEntries?: string;
  ca?: string;
  cert?: string;
  key?: string;
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
  logFormat?: 'json' | 'pretty' | 'auto';
  isolation?: 'auto' | 'off';
  buildDiskMb?: string;
  diskLimit?: 'auto' | 'watch';
  diskPollMs?: string;
  minFreeMb?: string;
  diskCheckSec?: string;
  buildCpuMax?: string;
  killGraceSec?: string;
}

/** `spillway agent`: serves builds until SIGTERM, then drains (finishes running builds) and exits 0. */
export async function agentCommand(flags: AgentFlags, env: NodeJS.ProcessEnv): Promise<number> {
  const list = (s: string | undefined) => (s ? s.split(',').map((x) => x.trim()).filter(Boolean) : undefined);
  // On EC2 the agent learns its instance id from the instance metadata service (IMDSv2).
  const instanceId = flags.instanceId === 'imds' ? await fetchInstanceId({ baseUrl: flags.imdsUrl }) : flags.instanceId;
  const token = secretFrom('--token', flags.token, '--token-file', flags.tokenFile);
  const casToken = secretFrom('--cas-token', flags.casToken, '--cas-token-file', flags.casTokenFile);
  const options = parseAgentOptions({
    master: flags.master,
    token,
    name: flags.name,
    location: flags.location,
    jobTypes: list(flags.jobTypes),
    executors: flags.executors === undefined ? undefined : Number(flags.executors),
    labels: list(flags.labels),
    instanceId,
    imdsUrl: flags.imdsUrl,
    noticePollSec: flags.noticePollSec === undefined ? undefined : Number(flags.noticePollSec),
    workDir: flags.workDir,
    stateDir: flags.stateDir,
    casUrl: flags.cas,
    casToken,
    cacheDir: flags.cacheDir,
    inputMaxDepth: flags.inputMaxDepth === undefined ? undefined : Number(flags.inputMaxDepth),
    inputMaxEntries: flags.inputMaxEntries === undefined ? undefined : Number(flags.inputMaxEntries),
    buildDiskMb: num(flags.buildDiskMb),
    diskLimit: flags.diskLimit,
    diskPollMs: num(flags.diskPollMs),
    minFreeMb: num(flags.minFreeMb),
    diskCheckSec: num(flags.diskCheckSec),
    buildCpuMax: share(flags.buildCpuMax),
    killGraceSec: num(flags.killGraceSec),
    caFile: flags.ca,
    certFile: flags.cert,
    keyFile: flags.key,
  });
  const log = createLogger({ level: flags.logLevel ?? 'info', format: flags.logFormat ?? 'auto' }).child({ agent: options.name });
  const onArgv = scrubCommandLine(options.name);
  if (onArgv.length > 0) log.warn('agent.token-on-command-line', { flags: onArgv, hint: 'other users of this machine may have read it before it was scrubbed: use --token-file' });
  const baseEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && k !== 'SPILLWAY_AGENT_TOKEN' && k !== 'SPILLWAY_CAS_TOKEN') baseEnv[k] = v;
  // Detected once: who builds run as, and which limits this machine can enforce for jobs that ask.
  const identity = await detectBuildIdentity({ log, ...(flags.buildUser !== undefined && { buildUser: flags.buildUser }) });
  const isolation =
    flags.isolation === 'off'
      ? undefined
      : await detectIsolation({ log, ...(identity.kind === 'user' && { uid: identity.uid }), ...(options.buildCpuMax !== undefined && { buildCpuMax: options.buildCpuMax }) });
  const tls = readAgentTls(options);
  const agent = new Agent({ options, log, baseEnv, identity, ...(isolation && { isolation }), ...(tls && { tls }) });
  const running = agent.start();
  const outcome = await Promise.race([running.then(() => 'stopped' as const), onShutdownSignal()]);
  if (outcome !== 'stopped') {
    process.stderr.write(`spillway agent: ${outcome}: draining (finishing ${agent.runningJobs().length} running build(s))\n`);
    await agent.drain();
  }
  await running;
  await isolation?.close().catch(() => undefined);
  return 0;
}

const num = (s: string | undefined): number | undefined => (s === undefined ? undefined : Number(s));

/** "95%" or "0.95"; anything else goes to the schema as is, to be refused with its reason. */
function share(s: string | undefined): number | string | undefined {
  if (s === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)%$/.exec(s.trim());
  return m ? Number(m[1]) / 100 : Number.isNaN(Number(s)) ? s : Number(s);
}

/**
 * A secret given either inline or as a file (read once; a trailing newline is not part of it).
 * A file every user may read is refused: a build user is one of them.
 */
function secretFrom(inlineFlag: string, inline: string | undefined, fileFlag: string, file: string | undefined): string | undefined {
  if (file === undefined) return inline;
  if (inline !== undefined) throw new ConfigError('agent options', [`${fileFlag} and ${inlineFlag} (or its environment variable) both given: use one`]);
  try {
    // Standard input, or another inherited descriptor (a local pool passes the CAS token on fd
    // 3), may be a socket (node's spawn makes one for 'pipe'), which cannot be opened by path.
    const fd = file === '-' || file === '/dev/stdin' ? 0 : /^\/dev\/fd\/([0-9]{1,4})$/.test(file) ? Number(file.slice('/dev/fd/'.length)) : undefined;
    const st = fd === undefined ? statSync(file) : fstatSync(fd);
    if (st.isFile() && (st.mode & 0o004) !== 0) throw new Error(`it is readable by every user (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it`);
    const text = readFileSync(fd ?? file, 'utf8').replace(/\r?\n$/, '');
    // Read once and closed, so the builds this agent starts do not inherit it.
    if (fd !== undefined && fd > 2) closeSync(fd);
    if (text === '') throw new Error('it is empty');
    return text;
  } catch (err) {
    throw new ConfigError('agent options', [`${fileFlag}: cannot use ${file}: ${(err as Error).message}`]);
  }
}

/**
 * /proc/PID/cmdline is readable by every user of the machine, builds included: a token given
 * as --token is overwritten there (process.title rewrites the argv area). Returns the flags found.
 */
function scrubCommandLine(name: string): string[] {
  const found = process.argv.filter((a) => /^--(cas-)?token(=|$)/.test(a));
  if (found.length > 0) process.title = `spillway agent --name ${name}`;
  return found.map((a) => a.split('=')[0] as string);
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
