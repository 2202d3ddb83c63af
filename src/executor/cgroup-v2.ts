import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../lib';
import { CPU_PERIOD_US, MIB, exists, killAndRemove, parseFlatKeyed, readCgroupFile, safeGroupName } from './cgroup-fs';
import type { Enforcement, LimitGroup, ResourceLimits } from './limits';

const NEEDED = ['cpu', 'memory', 'pids'] as const;

/** A usable unified hierarchy: where it is and which controllers its child groups get. */
export interface CgroupV2Probe {
  /** The `spillway` parent group. */
  parent: string;
  enabled: Enforcement;
}

async function controllers(file: string): Promise<Set<string>> {
  return new Set(((await readCgroupFile(file)) ?? '').trim().split(/\s+/).filter(Boolean));
}

/** Enables our controllers for `dir`'s children; reports which ones are on afterwards. */
async function enable(dir: string): Promise<Set<string>> {
  const file = join(dir, 'cgroup.subtree_control');
  // One write per controller: a single write of all three fails as a whole if one is refused.
  for (const c of NEEDED) await fs.writeFile(file, `+${c}`).catch(() => undefined);
  return controllers(file);
}

/**
 * Looks for a writable unified hierarchy at `root` (pure v2) or `root/unified` (hybrid) in
 * which child groups get the cpu, memory and pids controllers. Undefined when none qualifies;
 * a hybrid setup's unified mount usually has no controllers (they are bound to v1).
 */
export async function probeCgroupV2(root: string): Promise<CgroupV2Probe | undefined> {
  for (const base of [root, join(root, 'unified')]) {
    const available = await controllers(join(base, 'cgroup.controllers'));
    if (!NEEDED.every((c) => available.has(c))) continue;
    // Fails with EBUSY where `base` holds processes itself (the "no internal processes"
    // rule), which is the common case inside a container; then v2 is not usable here.
    const atBase = await enable(base);
    if (!NEEDED.every((c) => atBase.has(c))) continue;
    const parent = join(base, 'spillway');
    try {
      await fs.mkdir(parent);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') continue;
    }
    const atParent = await enable(parent);
    const enabled = { cpu: atParent.has('cpu'), memory: atParent.has('memory'), pids: atParent.has('pids') };
    if (enabled.cpu && enabled.memory && enabled.pids) return { parent, enabled };
  }
  return undefined;
}

/** Creates one build's group under the v2 `spillway` parent and writes its limits. */
export async function createCgroupV2Group(probe: CgroupV2Probe, rawName: string, limits: ResourceLimits, clock?: Clock): Promise<LimitGroup> {
  const name = safeGroupName(rawName);
  const dir = join(probe.parent, name);
  await fs.mkdir(dir);
  const destroy = async (): Promise<void> => {
    const problem = await killAndRemove(dir, 3000, await exists(join(dir, 'cgroup.kill')), clock);
    if (problem) throw new Error(`cgroup not removed: ${problem}`);
  };
  const enforced: Enforcement = { cpu: false, memory: false, pids: false };
  try {
    if (limits.cpus !== undefined) {
      await fs.writeFile(join(dir, 'cpu.max'), `${Math.max(1000, Math.round(limits.cpus * CPU_PERIOD_US))} ${CPU_PERIOD_US}`);
      enforced.cpu = true;
    }
    if (limits.memoryMb !== undefined) {
      await fs.writeFile(join(dir, 'memory.max'), String(Math.round(limits.memoryMb * MIB)));
      // Without this the build would page out instead of hitting its limit.
      const swap = join(dir, 'memory.swap.max');
      if (await exists(swap)) await fs.writeFile(swap, '0');
      enforced.memory = true;
    }
    if (limits.pids !== undefined) {
      await fs.writeFile(join(dir, 'pids.max'), String(Math.max(1, Math.floor(limits.pids))));
      enforced.pids = true;
    }
  } catch (err) {
    await destroy().catch(() => undefined);
    throw err;
  }
  const procs = join(dir, 'cgroup.procs');
  return {
    name,
    enforced,
    ...(enforced.memory && { memoryLimitMb: limits.memoryMb }),
    procsFiles: [procs],
    async add(pid) {
      await fs.writeFile(procs, String(pid));
    },
    async memoryEvents() {
      const events = parseFlatKeyed(await readCgroupFile(join(dir, 'memory.events')));
      return { oomKills: events.oom_kill ?? 0 };
    },
    destroy,
  };
}
