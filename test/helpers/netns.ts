import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';

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

