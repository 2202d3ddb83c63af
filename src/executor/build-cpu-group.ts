import { promises as fs } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { CPU_PERIOD_US, exists, killAndRemove } from './cgroup-fs';
import { processAlive } from '../lib';

/**
 * cpu.shares (v1) / cpu.weight (v2) of the group all of one agent's builds share: a tenth of the
 * default, so under contention the agent (heartbeats, log streaming, results) is served first,
 * while idle cores still go to builds.
 */
export const BUILD_CPU_SHARES = 102;
export const BUILD_CPU_WEIGHT = 10;

/** The parent group of one agent's builds in the cpu controller: low weight, optional ceiling. */
export interface BuildCpuGroup {
  /** Its directory; every build's group is created below it. */
  readonly dir: string;
  /** The ceiling for all builds together, in cores, when one is set. */
  readonly maxCores: number | undefined;
  remove(): Promise<void>;
}

/**
 * Creates `<spillwayDir>/builds-<pid>` with the low weight and, given `maxShare` (0.95 = 95% of
 * the machine's cores), a quota for all builds together. A group of a dead agent of the same
 * pid is reused.
 */
export async function createBuildCpuGroup(kind: 'v1' | 'v2', spillwayDir: string, maxShare: number | undefined, cores = availableParallelism()): Promise<BuildCpuGroup> {
  await removeDeadAgentsGroups(spillwayDir);
  const dir = join(spillwayDir, `builds-${process.pid}`);
  await fs.mkdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  const maxCores = maxShare === undefined ? undefined : maxShare * cores;
  const quota = maxCores === undefined ? undefined : Math.max(1000, Math.round(maxCores * CPU_PERIOD_US));
  if (kind === 'v1') {
    await fs.writeFile(join(dir, 'cpu.shares'), String(BUILD_CPU_SHARES));
    await fs.writeFile(join(dir, 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
    await fs.writeFile(join(dir, 'cpu.cfs_quota_us'), quota === undefined ? '-1' : String(quota));
  } else {
    await fs.writeFile(join(dir, 'cpu.weight'), String(BUILD_CPU_WEIGHT));
    await fs.writeFile(join(dir, 'cpu.max'), `${quota === undefined ? 'max' : quota} ${CPU_PERIOD_US}`);
    // Children (the builds' groups) need the controllers too.
    for (const c of ['cpu', 'memory', 'pids']) await fs.writeFile(join(dir, 'cgroup.subtree_control'), `+${c}`).catch(() => undefined);
  }
  return {
    dir,
    maxCores,
    remove: async () => {
      if (!(await exists(dir))) return;
      const problem = await killAndRemove(dir, 3000);
      if (problem) throw new Error(`cgroup not removed: ${problem}`);
    },
  };
}

/**
 * Removes the groups of agents that are gone (crashed, or never closed) once they are empty.
 * Nothing is killed: a pid that is dead here may be a live agent in another pid namespace
 * sharing this cgroup tree.
 */
async function removeDeadAgentsGroups(spillwayDir: string): Promise<void> {
  const names = await fs.readdir(spillwayDir).catch(() => [] as string[]);
  for (const name of names) {
    const pid = Number(/^builds-(\d+)$/.exec(name)?.[1]);
    if (!pid || pid === process.pid || processAlive(pid)) continue;
    const dir = join(spillwayDir, name);
    // The builds' own groups first: a parent with children cannot be removed.
    for (const child of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (child.isDirectory()) await fs.rmdir(join(dir, child.name)).catch(() => undefined);
    }
    await fs.rmdir(dir).catch(() => undefined);
  }
}
