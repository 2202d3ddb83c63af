import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A private redis-server on a free loopback port in a temp dir (demo and tests). */
export interface RedisServerHandle {
  url: string;
  port: number;
  dir: string;
  /** Sends the server a signal: SIGSTOP makes a hung Redis (connections open, no answers), SIGCONT ends it. */
  signal(sig: NodeJS.Signals): void;
  /** Stops the server (SIGTERM, or SIGKILL to simulate a crash) and removes its dir unless kept. */
  stop(opts?: { kill?: boolean; keepDir?: boolean }): Promise<void>;
}

export interface RedisServerOptions {
  /** @defaultValue 'redis-server' */
  binary?: string;
  /** Reuse a data dir (a restart with persistence). @defaultValue a new temp dir */
  dir?: string;
  /** Turn on the append-only file so a restart keeps the data. @defaultValue false */
  persistence?: boolean;
  port?: number;
  /**
   * Runs the server in a process group of its own, so a Ctrl-C in the terminal (SIGINT to the
   * whole foreground group) reaches only its owner, which then stops it last, after its own
   * clean shutdown. It is ended when its owner exits, even by a crash. @defaultValue false
   */
  ownProcessGroup?: boolean;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export async function startRedisServer(opts: RedisServerOptions = {}): Promise<RedisServerHandle> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'spillway-redis-'));
  const port = opts.port ?? (await freePort());
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--daemonize', 'no'];
  args.push('--appendonly', opts.persistence ? 'yes' : 'no');
  if (opts.persistence) args.push('--appendfsync', 'always');
  const child: ChildProcess = spawn(opts.binary ?? 'redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'], detached: opts.ownProcessGroup ?? false });
  if (opts.ownProcessGroup) {
    const orphan = () => void child.kill('SIGTERM');
    process.once('exit', orphan);
    child.once('exit', () => process.off('exit', orphan));
  }
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (b: Buffer) => {
      output += b.toString();
      if (/Ready to accept connections/i.test(output)) {
        child.stdout?.off('data', onData);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.once('error', (err) =>
      reject(new Error(`cannot start redis-server (${err.message}); install it (apt-get install redis-server) or set REDIS_URL`)),
    );
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${output.slice(-500)}`)));
  });
  child.stdout?.resume();
  child.stderr?.resume();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    signal: (sig) => void child.kill(sig),
    stop: async ({ kill = false, keepDir = false } = {}) => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill(kill ? 'SIGKILL' : 'SIGTERM');
        await exited;
      }
      if (!keepDir && !opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
