import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

/** Why this machine cannot run the test, or undefined when it can. */
export function whyNoNetns(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (ip netns)';
  for (const [cmd, pkg] of [
    ['ip', 'iproute2'],
    ['wg', 'wireguard-tools'],
    ['wireguard-go', 'wireguard-go'],
    ['redis-server', 'redis-server'],
  ]) {
    try {
      execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    } catch {
      return `\`${cmd}\` not found (apt-get install ${pkg})`;
    }
  }
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun: wireguard-go cannot make its interface';
  try {
    const probe = `swprobe-${randomBytes(3).toString('hex')}`;
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe' });
  } catch (err) {
    return `cannot create network namespaces: ${(err as Error).message.split('\n')[0]}`;
  }
  return undefined;
}

/** A process started inside a namespace, with its output kept for assertions and failures. */
export class NsProcess {
  readonly child: ChildProcess;
  output = '';
  private readonly listeners: Array<() => void> = [];
  constructor(ns: string, argv: string[], env: Record<string, string> = {}) {
    this.child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    const onData = (b: Buffer) => {
      this.output += b.toString();
      for (const l of [...this.listeners]) l();
    };
    this.child.stdout!.on('data', onData);
    this.child.stderr!.on('data', onData);
    this.child.once('exit', () => {
      for (const l of [...this.listeners]) l();
    });
  }
  waitFor(re: RegExp): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = re.exec(this.output);
        if (m) {
          this.listeners.splice(this.listeners.indexOf(check), 1);
          resolve(m);
        } else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          this.listeners.splice(this.listeners.indexOf(check), 1);
          reject(new Error(`exited before printing ${re}:\n${this.output.slice(-2000)}`));
        }
      };
      this.listeners.push(check);
      check();
    });
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}


/**
 * Namespaces joined by veth underlays and WireGuard tunnels run by wireguard-go, with a redis
 * and a `spillway master` on the hub side: what the VPN tests share. `tearDown()` undoes every
 * step that happened, also after a failed setup.
 */
export class NetnsLab {
  readonly procs: NsProcess[] = [];
  dir = '';
  private readonly created: string[] = [];
  private readonly sockets: string[] = [];

  ip(...args: string[]): Buffer {
    return execFileSync('ip', args, { stdio: 'pipe' });
  }

  inNs(n: string, ...argv: string[]): string {
    return execFileSync('ip', ['netns', 'exec', n, ...argv], { stdio: 'pipe' }).toString();
  }

  start(n: string, argv: string[], env?: Record<string, string>): NsProcess {
    const p = new NsProcess(n, argv, env);
    this.procs.push(p);
    return p;
  }

  /** The temp dir and the namespaces, each with its loopback up. */
  setUp(dirPrefix: string, namespaces: string[]): void {
    this.dir = mkdtempSync(join(tmpdir(), dirPrefix));
    for (const n of namespaces) {
      this.ip('netns', 'add', n);
      this.created.push(n);
      this.ip('-n', n, 'link', 'set', 'lo', 'up');
    }
  }

  /** An underlay link between two namespaces. */
  link(a: string, aIf: string, aAddr: string, b: string, bIf: string, bAddr: string): void {
    this.ip('link', 'add', aIf, 'netns', a, 'type', 'veth', 'peer', 'name', bIf, 'netns', b);
    this.ip('-n', a, 'addr', 'add', aAddr, 'dev', aIf);
    this.ip('-n', b, 'addr', 'add', bAddr, 'dev', bIf);
    this.ip('-n', a, 'link', 'set', aIf, 'up');
    this.ip('-n', b, 'link', 'set', bIf, 'up');
  }

  /** A WireGuard interface in `n` from a wg-quick style config (the kind `spillway vpn` writes). */
  async tunnel(n: string, iface: string, conf: string, address: string): Promise<void> {
    // Verbose, because only then does wireguard-go say when its control socket is ready.
    const p = this.start(n, ['wireguard-go', '-f', iface], { LOG_LEVEL: 'verbose' });
    this.sockets.push(`/var/run/wireguard/${iface}.sock`);
    await p.waitFor(/UAPI listener started/);
    const path = join(this.dir, `${iface}.conf`);
    writeFileSync(path, conf, { mode: 0o600 });
    // wg-quick's own parser turns the config into what `wg setconf` takes (no Address line).
    writeFileSync(`${path}.wg`, this.inNs(n, 'wg-quick', 'strip', path), { mode: 0o600 });
    this.inNs(n, 'wg', 'setconf', iface, `${path}.wg`);
    this.ip('-n', n, 'addr', 'add', address, 'dev', iface);
    this.ip('-n', n, 'link', 'set', iface, 'up');
  }

  /** redis and a `spillway master` in `n`, its agent listener bound to the hub's VPN address only. */
  async startMaster(n: string, cli: string, agents: { host: string; port: number; token: string; allow: string[] }): Promise<NsProcess> {
    const redis = this.start(n, ['redis-server', '--port', '6379', '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir]);
    await redis.waitFor(/Ready to accept connections/);
    const configFile = join(this.dir, 'master.yaml');
    writeFileSync(
      configFile,
      stringify({
        redis: { url: 'redis://127.0.0.1:6379' },
        http: { host: '127.0.0.1', port: 0 },
        agents: { ...agents, heartbeatSec: 1 },
        jobTypes: { b2g: {} },
      }),
    );
    const master = this.start(n, [process.execPath, cli, 'master', '--config', configFile]);
    await master.waitFor(new RegExp(`agents connect to ws://${agents.host.replace(/\./g, '\\.')}:${agents.port}`));
    return master;
  }

  async tearDown(): Promise<void> {
    // Processes first (they hold the tun devices), newest first (an agent drains while its
    // master is still there to hear it), then the namespaces, which take their veths along.
    for (const p of this.procs.reverse()) await p.stop().catch(() => undefined);
    for (const n of this.created) {
      try {
        this.ip('netns', 'del', n);
      } catch {
        // already gone
      }
    }
    for (const s of this.sockets) rmSync(s, { force: true });
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
