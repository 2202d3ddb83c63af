import * as child_process from 'node:child_process';
import type { PoolConfig } from '../config';
import type { Clock, Logger } from '../lib';
import { ProviderError, type LaunchRequest, type Machine, type MachineState, type Provider, type SuspendMode, type SuspendOutcome } from './provider';

export interface LocalProviderOptions {
  pool: string;
  config: PoolConfig;
  /** Job types the pool's agents serve. */
  jobTypes: readonly string[];
  /** How to run `spillway`, e.g. [process.execPath, '/path/to/cli/main.js']. */
  agentCommand: readonly string[];
  /** The master's agent listener, known once it listens. */
  masterUrl: () => string;
  token: string;
  /**
   * The master's HTTP cache for the agents (remote and cached actions need it), known once the
   * HTTP API listens; undefined: a master without a CAS, agents without one.
   */
  cas?: () => LocalAgentCas | undefined;
  clock: Clock;
  log: Logger;
  /** @defaultValue child_process.spawn */
  spawn?: typeof child_process.spawn;
}

/** Where a local agent finds the master's CAS, and the read-write token it uses there. */
export interface LocalAgentCas {
  /** e.g. http://127.0.0.1:8080/cache */
  url: string;
  /** Absent where the cache lets anyone write (`cas.anonymous: read-write`). */
  token?: string;
}

/** The agent reads the CAS token from this descriptor, a pipe like its standard input. */
const CAS_TOKEN_FD = 3;

interface LocalMachine {
  id: string;
  state: MachineState;
  hibernated: boolean;
  child: child_process.ChildProcess | undefined;
  launchedAt: number;
  /** Cancels a pending boot when the machine is suspended before it came up. */
  boot: AbortController | undefined;
}

/**
 * Instances that are local `spillway agent` processes: waking starts one after a simulated
 * boot delay (or resumes a SIGSTOPped one), hibernating freezes it with SIGSTOP, stopping ends
 * it with SIGTERM (the agent drains first). It powers the demo and the end-to-end tests with
 * the same state machine the EC2 provider drives.
 */
export class LocalProvider implements Provider {
  readonly kind = 'local';
  private readonly machines = new Map<string, LocalMachine>();
  /** Machines made per client token: a launch retried after a timeout returns the same ones, as EC2 does. */
  private readonly launches = new Map<string, string[]>();
  private seq = 0;

  constructor(private readonly o: LocalProviderOptions) {
    const pre = o.config.local?.preCreated ?? o.config.maxInstances;
    for (let i = 0; i < pre; i++) this.create('stopped');
  }

  async setup(): Promise<void> {
    if (this.o.agentCommand.length === 0) throw new ProviderError('local provider: no agent command to run', 'fatal', undefined);
  }

  async list(): Promise<Machine[]> {
    return [...this.machines.values()]
      .filter((m) => m.state !== 'terminated')
      .map((m) => ({ id: m.id, state: m.state, privateIp: '127.0.0.1', spot: false, hibernated: m.hibernated, launchedAt: m.launchedAt }));
  }

  async start(ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      const m = this.get(id);
      if (m.state !== 'stopped') throw new ProviderError(`cannot start ${id} in state ${m.state}`, 'retry', 'IncorrectInstanceState');
      if (m.child && m.hibernated) {
        m.child.kill('SIGCONT');
        m.state = 'running';
        m.hibernated = false;
        continue;
      }
      m.state = 'pending';
      m.boot = new AbortController();
      void this.o.clock.sleep(this.o.config.local?.bootDelayMs ?? 1000, m.boot.signal).then(
        () => this.boot(m),
        () => undefined,
      );
    }
  }

  /** A machine whose agent process has not started yet cannot be frozen: it is stopped. */
  async suspend(ids: readonly string[], mode: SuspendMode): Promise<SuspendOutcome[]> {
    const machines = ids.map((id) => this.get(id));
    return machines.map((m): SuspendOutcome => {
      m.boot?.abort();
      if (mode === 'terminate') {
        this.kill(m, 'SIGTERM');
        m.state = 'terminated';
        return { id: m.id, did: 'terminated', reason: null };
      }
      if (mode === 'hibernate' && m.child) {
        m.child.kill('SIGSTOP');
        m.state = 'stopped';
        m.hibernated = true;
        return { id: m.id, did: 'hibernated', reason: null };
      }
      m.state = m.child ? 'stopping' : 'stopped';
      this.kill(m, 'SIGTERM');
      return { id: m.id, did: 'stopped', reason: mode === 'hibernate' ? 'no agent process to freeze yet, stopped instead' : null };
    });
  }

  async launch(req: LaunchRequest): Promise<Machine[]> {
    let ids = this.launches.get(req.clientToken);
    if (!ids) {
      const made = Array.from({ length: req.count }, () => this.create('stopped'));
      ids = made.map((m) => m.id);
      this.launches.set(req.clientToken, ids);
      await this.start(ids);
    }
    const launched = new Set(ids);
    return this.list().then((all) => all.filter((m) => launched.has(m.id)));
  }

  async terminate(ids: readonly string[]): Promise<void> {
    await this.suspend(ids, 'terminate');
  }

  /** Ends every agent process (the master is stopping). */
  async close(): Promise<void> {
    const exits = [...this.machines.values()].filter((m) => m.child).map((m) => new Promise((r) => m.child!.once('exit', r)));
    for (const m of this.machines.values()) {
      m.boot?.abort();
      this.kill(m, 'SIGTERM');
    }
    await Promise.race([Promise.all(exits), this.o.clock.sleep(10_000)]);
    for (const m of this.machines.values()) m.child?.kill('SIGKILL');
  }

  private create(state: MachineState): LocalMachine {
    const id = `local-${this.o.pool}-${++this.seq}`;
    const m: LocalMachine = { id, state, hibernated: false, child: undefined, launchedAt: this.o.clock.now(), boot: undefined };
    this.machines.set(id, m);
    return m;
  }

  private get(id: string): LocalMachine {
    const m = this.machines.get(id);
    if (!m || m.state === 'terminated') throw new ProviderError(`no instance ${id} in pool ${this.o.pool}`, 'fatal', 'InvalidInstanceID.NotFound');
    return m;
  }

  private boot(m: LocalMachine): void {
    m.boot = undefined;
    const [cmd, ...pre] = this.o.agentCommand;
    const args = [
      ...pre,
      'agent',
      '--master',
      this.o.masterUrl(),
      '--name',
      m.id,
      '--location',
      'cloud',
      '--instance-id',
      m.id,
      '--job-types',
      this.o.jobTypes.join(','),
      '--executors',
      String(this.o.config.executorsPerInstance),
      '--log-level',
      'warn',
      // Through a pipe: neither the agent's environment nor its command line (both readable by
      // its builds when they run as its user) nor any file ever holds the token.
      '--token-file',
      '/dev/stdin',
    ];
    const cas = this.o.cas?.();
    const casToken = cas?.token;
    if (cas) args.push('--cas', cas.url);
    if (casToken) args.push('--cas-token-file', `/dev/fd/${CAS_TOKEN_FD}`);
    const { SPILLWAY_AGENT_TOKEN: _ours, SPILLWAY_CAS_TOKEN: _cache, ...env } = process.env;
    const child = (this.o.spawn ?? child_process.spawn)(cmd!, args, { env, stdio: ['pipe', 'ignore', 'pipe', ...(casToken ? ['pipe' as const] : [])] });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(this.o.token);
    if (casToken) {
      const pipe = child.stdio[CAS_TOKEN_FD] as NodeJS.WritableStream | null | undefined;
      pipe?.on('error', () => undefined);
      pipe?.end(casToken);
    }
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2000)));
    m.child = child;
    m.state = 'running';
    this.o.log.info('instance.booted', { pool: this.o.pool, instanceId: m.id, pid: child.pid });
    child.once('exit', (code, signal) => {
      if (m.child !== child) return;
      m.child = undefined;
      m.hibernated = false;
      if (m.state !== 'terminated') m.state = 'stopped';
      if (code !== 0 && signal !== 'SIGTERM') {
        this.o.log.warn('instance.exited', { pool: this.o.pool, instanceId: m.id, code, signal, stderr: stderr.trim().split('\n').slice(-3) });
      }
    });
  }

  private kill(m: LocalMachine, signal: NodeJS.Signals): void {
    if (!m.child) return;
    // A frozen process cannot act on SIGTERM: let it run again first.
    if (m.hibernated) m.child.kill('SIGCONT');
    m.child.kill(signal);
  }
}
