import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { Clock, Logger } from '../lib';
import { exists } from './cgroup-fs';
import { createCgroupV1Group, probeCgroupV1 } from './cgroup-v1';
import { createCgroupV2Group, probeCgroupV2 } from './cgroup-v2';
import { createBuildCpuGroup, type BuildCpuGroup } from './build-cpu-group';
import { BUILD_NICE, type Enforcement, type Isolation, type LimitGroup } from './limits';

export interface DetectIsolationOptions {
  /** Where the cgroup filesystems are mounted; point it at an empty dir to get `none`. @defaultValue '/sys/fs/cgroup' */
  cgroupRoot?: string;
  /** Where procfs is mounted (for `oom_score_adj`). @defaultValue '/proc' */
  procRoot?: string;
  /** Directories searched for `prlimit` (util-linux). @defaultValue ['/usr/bin', '/bin', '/usr/sbin', '/sbin'] */
  binDirs?: string[];
  /** The uid builds run as: RLIMIT_NPROC does not bind root. @defaultValue process.getuid() */
  uid?: number;
  /** A ceiling for all builds together, as a share of the machine's cores (0.95 = 95%). @defaultValue none */
  buildCpuMax?: number;
  /** Paces the kill-and-remove polling of a build's cgroup when it ends. @defaultValue systemClock */
  clock?: Clock;
  log: Logger;
}

const NONE: Enforcement = { cpu: false, memory: false, pids: false };

/**
 * Finds out once, at agent start, how builds can be confined here: cgroup v2 when a writable
 * unified hierarchy gives child groups the cpu, memory and pids controllers, else the v1
 * hierarchies that are writable, else `none` (rlimits and timeouts only). Logs one
 * `executor.isolation` event saying what was found and what will be enforced.
 */
export async function detectIsolation(options: DetectIsolationOptions): Promise<Isolation> {
  const root = options.cgroupRoot ?? '/sys/fs/cgroup';
  const procRoot = options.procRoot ?? '/proc';
  const oomScoreAdj = await exists(join(procRoot, 'self', 'oom_score_adj'));
  const prlimit = await findProgram('prlimit', options.binDirs ?? ['/usr/bin', '/bin', '/usr/sbin', '/sbin']);
  const uid = options.uid ?? process.getuid?.() ?? -1;
  const nice = await findProgram('nice', options.binDirs ?? ['/usr/bin', '/bin', '/usr/sbin', '/sbin']);
  const base = { oomScoreAdj, prlimit, nprocRlimit: prlimit !== undefined && uid !== 0, nice };

  let isolation: Isolation;
  const v2 = await probeCgroupV2(root).catch(() => undefined);
  const v1 = v2 ? NONE : await probeCgroupV1(root).catch(() => NONE);
  const builds = await buildsGroup(v2 ? 'v2' : v1.cpu ? 'v1' : undefined, v2?.parent ?? join(root, 'cpu', 'spillway'), options);
  const common = { ...base, buildsCpu: builds && { dir: builds.dir, maxCores: builds.maxCores }, close: async () => builds?.remove() };
  if (v2) {
    const probe = builds ? { ...v2, parent: builds.dir } : v2;
    isolation = { kind: 'cgroup-v2', cgroups: v2.enabled, ...common, create: (name, limits) => createCgroupV2Group(probe, name, limits, options.clock) };
  } else if (v1.cpu || v1.memory || v1.pids) {
    isolation = { kind: 'cgroup-v1', cgroups: v1, ...common, create: (name, limits) => createCgroupV1Group(root, v1, name, limits, options.clock, builds?.dir) };
  } else {
    isolation = { kind: 'none', cgroups: NONE, ...common, create: async (name) => noGroup(name) };
  }
  const { cgroups } = isolation;
  const fallback = {
    memory: cgroups.memory ? 'cgroup' : 'RLIMIT_AS (address space, not resident memory)',
    pids: cgroups.pids ? 'cgroup' : base.nprocRlimit ? 'RLIMIT_NPROC (counts all processes of the user)' : 'not enforced',
    cpu: cgroups.cpu ? 'cgroup' : 'not enforced',
  };
  options.log[isolation.kind === 'none' ? 'warn' : 'info']('executor.isolation', {
    kind: isolation.kind,
    cgroupRoot: root,
    cgroups,
    enforce: { ...fallback, time: 'timeout, process-group kill' },
    buildPriority: {
      nice: nice ? BUILD_NICE : 'not set (no nice binary)',
      cpuWeight: builds ? 'low (all builds share one group)' : 'not set (no cpu cgroup)',
      cpuCeilingCores: builds?.maxCores ?? (options.buildCpuMax === undefined ? 'off' : 'not enforced (no cpu cgroup)'),
    },
    oomScoreAdj,
    prlimit: prlimit ?? null,
  });
  return isolation;
}

/** The agent's builds group in the cpu controller, or undefined where there is none to make. */
async function buildsGroup(kind: 'v1' | 'v2' | undefined, spillwayDir: string, o: DetectIsolationOptions): Promise<BuildCpuGroup | undefined> {
  if (!kind) {
    if (o.buildCpuMax !== undefined) o.log.warn('executor.cpu-ceiling', { enforced: false, reason: 'no writable cpu cgroup' });
    return undefined;
  }
  try {
    const group = await createBuildCpuGroup(kind, spillwayDir, o.buildCpuMax);
    o.log.info('executor.cpu-ceiling', { enforced: group.maxCores !== undefined, maxCores: group.maxCores ?? null, group: group.dir });
    return group;
  } catch (err) {
    o.log.warn('executor.cpu-ceiling', { enforced: false, reason: err instanceof Error ? err.message : String(err) });
    return undefined;
  }
}

/** The group of a machine without usable cgroups: nothing to join, nothing enforced. */
function noGroup(name: string): LimitGroup {
  return {
    name,
    enforced: { ...NONE },
    procsFiles: [],
    add: async () => undefined,
    memoryEvents: async () => ({ oomKills: 0 }),
    destroy: async () => undefined,
  };
}

async function findProgram(name: string, dirs: string[]): Promise<string | undefined> {
  for (const dir of dirs) {
    const path = join(dir, name);
    try {
      await fs.access(path, 1 /* X_OK */);
      return path;
    } catch {
      // keep looking
    }
  }
  return undefined;
}
