import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../lib';
import { CPU_PERIOD_US, MIB, exists, killAndRemove, parseFlatKeyed, readCgroupFile, safeGroupName } from './cgroup-fs';
import type { Enforcement, LimitGroup, ResourceLimits } from './limits';

type Controller = keyof Enforcement;

/** v1 hierarchy directory and the file whose presence proves the controller works there. */
const V1: Record<Controller, { dir: string; file: string }> = {
  cpu: { dir: 'cpu', file: 'cpu.cfs_quota_us' },
  memory: { dir: 'memory', file: 'memory.limit_in_bytes' },
  pids: { dir: 'pids', file: 'pids.max' },
};
const CONTROLLERS = Object.keys(V1) as Controller[];

/**
 * Which v1 hierarchies under `root` we can create groups in. The `spillway` parent is created
 * here (not per build) so a read-only or missing hierarchy is found once, at start.
 */
export async function probeCgroupV1(root: string): Promise<Enforcement> {
  const found: Enforcement = { cpu: false, memory: false, pids: false };
  for (const c of CONTROLLERS) {
    const hierarchy = join(root, V1[c].dir);
    // Never mkdir a hierarchy itself: an empty directory is not a mounted controller.
    if (!(await exists(join(hierarchy, 'cgroup.procs')))) continue;
    const parent = join(hierarchy, 'spillway');
    try {
      await fs.mkdir(parent);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') continue;
    }
    found[c] = await exists(join(parent, V1[c].file));
  }
  return found;
}

/** Creates one build's groups in each usable v1 hierarchy that a requested limit needs. */
export async function createCgroupV1Group(
  root: string,
  usable: Enforcement,
  rawName: string,
  limits: ResourceLimits,
  clock?: Clock,
  cpuParent?: string,
): Promise<LimitGroup> {
  const name = safeGroupName(rawName);
  const wanted: Enforcement = {
    // Below the agent's builds group every build needs a cpu group, for the weight and ceiling.
    cpu: usable.cpu && (limits.cpus !== undefined || cpuParent !== undefined),
    memory: usable.memory && limits.memoryMb !== undefined,
    pids: usable.pids && limits.pids !== undefined,
  };
  const dirs: Partial<Record<Controller, string>> = {};
  const destroy = async (): Promise<void> => {
    const problems: string[] = [];
    // Memory last: its charge must not outlive processes still counted elsewhere.
    for (const c of ['pids', 'cpu', 'memory'] as const) {
      const dir = dirs[c];
      const problem = dir ? await killAndRemove(dir, 3000, false, clock) : undefined;
      if (problem) problems.push(problem);
    }
    if (problems.length) throw new Error(`cgroup not removed: ${problems.join(', ')}`);
  };
  try {
    for (const c of CONTROLLERS) {
      if (!wanted[c]) continue;
      const dir = c === 'cpu' && cpuParent ? join(cpuParent, name) : join(root, V1[c].dir, 'spillway', name);
      await fs.mkdir(dir);
      dirs[c] = dir;
    }
    if (dirs.cpu && limits.cpus !== undefined) {
      await fs.writeFile(join(dirs.cpu, 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
      await fs.writeFile(join(dirs.cpu, 'cpu.cfs_quota_us'), String(Math.max(1000, Math.round(limits.cpus * CPU_PERIOD_US))));
    }
    if (dirs.memory && limits.memoryMb !== undefined) {
      const bytes = String(Math.round(limits.memoryMb * MIB));
      await fs.writeFile(join(dirs.memory, 'memory.limit_in_bytes'), bytes);
      // memsw is RAM+swap; equal to the RAM limit means no swap, so the limit really bites.
      const memsw = join(dirs.memory, 'memory.memsw.limit_in_bytes');
      if (await exists(memsw)) await fs.writeFile(memsw, bytes);
    }
    if (dirs.pids && limits.pids !== undefined) {
      await fs.writeFile(join(dirs.pids, 'pids.max'), String(Math.max(1, Math.floor(limits.pids))));
    }
  } catch (err) {
    await destroy().catch(() => undefined);
    throw err;
  }
  const procsFiles = Object.values(dirs).map((d) => join(d, 'cgroup.procs'));
  return {
    name,
    // A cpu group only for the agent's weight and ceiling enforces no limit of the build's own.
    enforced: { ...wanted, cpu: wanted.cpu && limits.cpus !== undefined },
    ...(wanted.memory && { memoryLimitMb: limits.memoryMb }),
    procsFiles,
    async add(pid) {
      for (const f of procsFiles) await fs.writeFile(f, String(pid));
    },
    async memoryEvents() {
      if (!dirs.memory) return { oomKills: 0 };
      const ctl = parseFlatKeyed(await readCgroupFile(join(dirs.memory, 'memory.oom_control')));
      // oom_kill appeared in Linux 4.13; before that, being under OOM is the best evidence.
      if (ctl.oom_kill !== undefined) return { oomKills: ctl.oom_kill };
      return { oomKills: ctl.under_oom ? 1 : 0 };
    },
    destroy,
  };
}
