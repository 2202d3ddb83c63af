import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second for /proc/<pid>/stat times (`getconf CLK_TCK`, 100 almost everywhere). */
export const CLK_TCK: number = (() => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

export interface ProcCpu {
  /** utime + stime of the process itself, ms. */
  self: number;
  /** stime alone (kernel: fork, pipes, sockets, fs), ms. */
  sys: number;
  /** cutime + cstime: children it has waited for (an agent's builds), ms. */
  children: number;
}

/** CPU time of a process from /proc/<pid>/stat; undefined when it is gone. */
export function procCpu(pid: number | undefined): ProcCpu | undefined {
  if (pid === undefined) return undefined;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Fields after the command name (which may hold spaces) start at field 3 (state).
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const tick = (i: number) => (Number(f[i - 3]) * 1000) / CLK_TCK;
  return { self: tick(14) + tick(15), sys: tick(15), children: tick(16) + tick(17) };
}

/** Busy and total jiffies of the whole machine (/proc/stat), for "how loaded was the box". */
export function machineCpu(): { busyMs: number; totalMs: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busyMs: ((total - idle) * 1000) / CLK_TCK, totalMs: (total * 1000) / CLK_TCK };
}

/** The pid of the redis-server listening on `port` (its title names the address). */
export function findRedisPid(port: number): number | undefined {
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      if (cmd.includes('redis-server') && cmd.includes(`:${port}`)) return Number(e);
    } catch {
      // gone
    }
  }
  return undefined;
}

/** A child whose stdout and stderr go to a file (so reading its logs costs the bench nothing). */
export interface LoggedChild {
  name: string;
  child: ChildProcess;
  logFile: string;
  exited: Promise<void>;
  log(): string;
}

export function spawnLogged(name: string, cmd: string, args: string[], logFile: string, env: NodeJS.ProcessEnv): LoggedChild {
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env });
  closeSync(fd);
  const exited = new Promise<void>((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r();
    child.once('exit', () => r());
    child.once('error', () => r());
  });
  return { name, child, logFile, exited, log: () => readFileSync(logFile, 'utf8') };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
export async function stopChild(c: LoggedChild, graceMs = 8000): Promise<void> {
  if (c.child.exitCode !== null || c.child.signalCode !== null) return;
  c.child.kill('SIGTERM');
  const timer = setTimeout(() => c.child.kill('SIGKILL'), graceMs);
  await c.exited;
  clearTimeout(timer);
}

/** Polls `fn` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function poll<T>(what: string, timeoutMs: number, fn: () => T | undefined | Promise<T | undefined>, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Pids of this process's children (e.g. agents a LocalProvider spawned, redis-server). */
export function childPids(): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

/** SIGKILL to every child of this process: for children spawned where the bench holds no handle. */
export function killChildren(): void {
  for (const pid of childPids()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}
