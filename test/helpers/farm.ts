import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { QueueEvents, Queue } from 'bullmq';
import { stringify } from 'yaml';
import { parseAgentOptions, parseConfig, type Config } from '../../src/config';
import { createLogger, type LogEntry, type Logger } from '../../src/lib';
import { startDaemon, type Daemon, type DaemonAddresses, type DaemonOptions } from '../../src/cli/daemon';
import type { BuildRecord, Master } from '../../src/master';
import { Agent, type AgentDeps, type AgentTls } from '../../src/slave-agent';
import { redisUrl } from '../setup/root-hooks';
import { uniquePrefix } from '../setup/unique';

export const CLI = resolve(__dirname, '../../src/cli/main.js');
export const TOKEN = 'test-token-0123456789';

/** A raw config for a test farm: its own key prefixes, ports chosen by the OS, fast heartbeats. */
export function farmConfigRaw(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const p = uniquePrefix();
  return {
    redis: { url: redisUrl(), queuePrefix: `${p}-bull`, keyPrefix: `${p}-sw` },
    http: { host: '127.0.0.1', port: 0 },
    grpc: { host: '127.0.0.1', port: 0 },
    agents: { host: '127.0.0.1', port: 0, token: TOKEN, heartbeatSec: 0.2, lostAfterSec: 1.5, helloTimeoutSec: 2 },
    jobTypes: { b2g: { attempts: 3 }, linux64: { attempts: 2 } },
    builds: { lockMs: 3000 },
    ...overrides,
  };
}

export interface LogCapture {
  log: Logger;
  entries: LogEntry[];
  /** Resolves with the first entry (already logged or future) matching. */
  waitFor(pred: (e: LogEntry) => boolean): Promise<LogEntry>;
}

export function captureLogs(): LogCapture {
  const entries: LogEntry[] = [];
  const waiters: Array<{ pred: (e: LogEntry) => boolean; resolve: (e: LogEntry) => void }> = [];
  const log = createLogger({
    level: 'debug',
    silent: true,
    sink: (e) => {
      entries.push(e);
      for (const w of [...waiters]) if (w.pred(e)) (waiters.splice(waiters.indexOf(w), 1), w.resolve(e));
    },
  });
  return {
    log,
    entries,
    waitFor: (pred) => {
      const hit = entries.find(pred);
      return hit ? Promise.resolve(hit) : new Promise((resolve) => waiters.push({ pred, resolve }));
    },
  };
}

export class TestFarm {
  readonly config: Config;
  readonly logs = captureLogs();
  daemon!: Daemon;
  addr!: DaemonAddresses;
  private readonly agents: Agent[] = [];
  private readonly closers: Array<() => Promise<unknown>> = [];

  constructor(
    raw: Record<string, unknown> = farmConfigRaw(),
    private readonly opts: Pick<DaemonOptions, 'sqsClient' | 'ec2Client' | 'providers' | 'runHubCommand'> & { agentCommand?: string[] } = {},
  ) {
    this.config = parseConfig(raw, {});
  }

  /** Builds finished since start, by job id (the latest attempt). */
  private readonly finishedBuilds = new Map<string, BuildRecord>();

  async start(): Promise<this> {
    this.daemon = await startDaemon({ config: this.config, log: this.logs.log, ...this.opts });
    this.addr = this.daemon.addresses;
    this.master.on('build-finished', (r) => this.finishedBuilds.set(r.id, r));
    return this;
  }

  /** Resolves with the job's finished build record, at once if it finished already. */
  finished(id: string): Promise<BuildRecord> {
    const done = this.finishedBuilds.get(id);
    if (done) return Promise.resolve(done);
    return new Promise((resolve) => {
      const on = (r: BuildRecord) => {
        if (r.id !== id) return;
        this.master.off('build-finished', on);
        resolve(r);
      };
      this.master.on('build-finished', on);
    });
  }

  /** An in-process agent, resolved once the master welcomed it. */
  async agent(o: {
    name: string;
    jobTypes?: string[];
    executors?: number;
    location?: 'onprem' | 'cloud';
    labels?: string[];
    token?: string;
    tls?: AgentTls;
    instanceId?: string;
    imdsUrl?: string;
    noticePollSec?: number;
    workDir?: string;
    cacheDir?: string;
    casUrl?: string;
    casToken?: string;
    buildDiskMb?: number;
    diskPollMs?: number;
    minFreeMb?: number;
    diskCheckSec?: number;
    buildCpuMax?: number;
    /** Dependencies beyond the options (isolation, disk limits...). */
    deps?: Partial<Omit<AgentDeps, 'options' | 'log'>>;
  }): Promise<Agent> {
    const { tls, deps, ...options } = o;
    const agent = new Agent({
      options: parseAgentOptions({ master: this.addr.agentUrl, token: TOKEN, jobTypes: ['b2g', 'linux64'], ...options }),
      ...deps,
      ...(tls && { tls }),
      log: this.logs.log.child({ agent: o.name }),
      backoff: { baseMs: 50, maxMs: 500 },
    });
    const welcomed = new Promise((r) => agent.once('welcomed', r));
    void agent.start().catch(() => undefined);
    this.agents.push(agent);
    await welcomed;
    return agent;
  }

  /** The farm's Redis server (its config names one by URL, never through Sentinel). */
  get redisUrl(): string {
    const { url } = this.config.redis;
    if (url === undefined) throw new Error('TestFarm: the config finds Redis through Sentinel; it has no URL');
    return url;
  }

  get master(): Master {
    return this.daemon.master;
  }

  queue(type: string): Queue {
    const q = new Queue(type, { connection: { url: this.redisUrl }, prefix: this.config.redis.queuePrefix });
    this.closers.push(() => q.close());
    return q;
  }

  async events(type: string): Promise<QueueEvents> {
    const e = new QueueEvents(type, { connection: { url: this.redisUrl }, prefix: this.config.redis.queuePrefix });
    await e.waitUntilReady();
    this.closers.push(() => e.close());
    return e;
  }

  /** `Authorization` for a role, with the first token of the config that grants it (none when open). */
  auth(role: 'read' | 'submit' | 'admin'): Record<string, string> {
    const t = this.config.http.tokens;
    const token = role === 'admin' ? t.admin[0] : role === 'submit' ? (t.submit[0] ?? t.admin[0]) : (t.read[0] ?? t.submit[0] ?? t.admin[0]);
    return token === undefined ? {} : { authorization: `Bearer ${token}` };
  }

  async submit(body: Record<string, unknown>): Promise<string> {
    const res = await fetch(`${this.addr.httpUrl}/api/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...this.auth('submit') },
      body: JSON.stringify(body),
    });
    if (res.status !== 201) throw new Error(`submit: ${res.status} ${await res.text()}`);
    return ((await res.json()) as { id: string }).id;
  }

  async api<T>(path: string): Promise<T> {
    const res = await fetch(this.addr.httpUrl + path, { headers: this.auth('read') });
    return (await res.json()) as T;
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.agents.map((a) => a.stop()));
    await this.daemon?.stop().catch(() => undefined);
    await Promise.allSettled(this.closers.map((c) => c()));
  }
}

/** A real `spillway` process; output is kept for assertions and failure messages. */
export interface CliProcess {
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when the combined output matches. */
  waitForOutput(re: RegExp): Promise<string>;
}

export function spawnCli(args: string[], env: Record<string, string> = {}): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const listeners: Array<() => void> = [];
  const onData = (b: Buffer) => {
    out += b.toString();
    for (const l of [...listeners]) l();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  return {
    child,
    output: () => out,
    exited,
    waitForOutput: (re) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(out);
          if (m) {
            listeners.splice(listeners.indexOf(check), 1);
            resolve(m[0]);
          }
        };
        listeners.push(check);
        exited.then(() => reject(new Error(`process exited before printing ${re}; output:\n${out}`)));
        check();
      }),
  };
}

export function writeConfigFile(raw: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'spillway-cfg-'));
  const file = join(dir, 'spillway.yaml');
  writeFileSync(file, stringify(raw));
  return file;
}
