import { promises as fs } from 'node:fs';
import { systemClock, type Clock } from '../lib';

/** Reads a cgroup file, or undefined when it is absent or unreadable. */
export async function readCgroupFile(path: string): Promise<string | undefined> {
  try {
    return await fs.readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Parses "key value" lines (memory.events, memory.oom_control, pids.events). */
export function parseFlatKeyed(text: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of (text ?? '').split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await fs.access(path);
    return true;
  } catch {
    return false;
  }
}

/** The pids listed in a `cgroup.procs` file. */
async function groupPids(procsFile: string): Promise<number[]> {
  const text = await readCgroupFile(procsFile);
  return (text ?? '').split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
}

/**
 * Sends `signal` to every member of the groups. Reaches what left the build's process group
 * (setsid, daemonizing double forks), which a process-group signal misses.
 */
export async function signalMembers(procsFiles: readonly string[], signal: NodeJS.Signals): Promise<void> {
  const pids = new Set((await Promise.all(procsFiles.map(groupPids))).flat());
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/**
 * Kills every process in the group and removes its directory. A build may still be forking
 * while we kill (the pids limit bounds how long), and v1 refuses rmdir while any task is
 * left, so both steps are retried until `maxMs`. Returns the last problem, if any.
 */
export async function killAndRemove(dir: string, maxMs: number, cgroupKill = false, clock: Clock = systemClock): Promise<string | undefined> {
  const deadline = clock.now() + maxMs;
  let problem: string | undefined;
  // cgroup.kill (v2, Linux 5.14+) kills atomically, forks included.
  if (cgroupKill) await fs.writeFile(`${dir}/cgroup.kill`, '1').catch(() => undefined);
  for (;;) {
    for (const pid of await groupPids(`${dir}/cgroup.procs`)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    try {
      await fs.rmdir(dir);
      return undefined;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      problem = `${dir}: ${code ?? String(err)}`;
    }
    if (clock.now() >= deadline) return problem;
    await clock.sleep(10);
  }
}

/** A group name safe as one path component. */
export function safeGroupName(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\.+/, '_');
  if (!cleaned) throw new Error('empty cgroup name');
  return cleaned.slice(0, 200);
}

export const MIB = 1024 * 1024;
/** The CFS period both hierarchies default to; quotas are expressed against it. */
export const CPU_PERIOD_US = 100_000;
