import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../lib';
import { dirUsageBytes } from './dir-usage';
import { mountImage, mountsBelow, unmount, unmountImage, type LoopTools } from './loop-image';

/**
 * How a build's work dir is held to its disk limit:
 * - `loop`: the dir is a loop-mounted ext4 image of the limit's size; the kernel refuses
 *   writes past it (ENOSPC), so the host's disk never fills. Needs root and loop devices.
 * - `watch`: the dir's usage is measured every `pollMs` and the build is killed once it is over;
 *   a fast writer can overshoot by what it writes in one interval.
 */
export type DiskLimitMode = 'loop' | 'watch';

/** One build's disk limit, handed to the runner, which ends the build when it is exceeded. */
export interface DiskGuard {
  readonly mode: DiskLimitMode;
  readonly limitMb: number;
  /** How often the runner checks while the build runs. */
  readonly pollMs: number;
  /** Whether the dir is at or past its limit (never rejects: an unreadable dir is not "over"). */
  exceeded(): Promise<boolean>;
  /** Unmounts and removes the image (`loop`); the dir itself stays for the caller to remove. */
  release(): Promise<void>;
}

/** How this agent limits builds' disk use, decided once by {@link detectDiskLimits}. */
export interface DiskLimits {
  readonly mode: DiskLimitMode;
  /** Confines `dir` (existing and empty) to `limitMb`. Rejects when it cannot. */
  limit(dir: string, limitMb: number): Promise<DiskGuard>;
}

export interface DetectDiskLimitsOptions {
  /** Where builds run: the probe image is made and mounted here. */
  workDir: string;
  /** @defaultValue 'auto' (loop where it works, else watch) */
  mode?: 'auto' | 'watch';
  /** @defaultValue 1000 */
  pollMs?: number;
  /** @defaultValue process.getuid() */
  uid?: number;
  /** Directories searched for mkfs.ext4, mount and umount. @defaultValue ['/usr/sbin', '/sbin', '/usr/bin', '/bin'] */
  binDirs?: string[];
  log: Logger;
}

/** Free space below which a loop image counts as full: ext4 keeps a few blocks a build cannot fill. */
const FULL_BELOW_BYTES = 64 * 1024;
const PROBE_MB = 2;
const DEFAULT_BIN_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];

/**
 * Finds out once, at agent start, whether loop-mounted images work here (root, the tools, a
 * loop device, a mount that succeeds), else falls back to the watcher. Logs one
 * `executor.disk-limit` event naming the mode and why.
 */
export async function detectDiskLimits(o: DetectDiskLimitsOptions): Promise<DiskLimits> {
  const pollMs = o.pollMs ?? 1000;
  const tools = await findTools(o.binDirs ?? DEFAULT_BIN_DIRS);
  let why: string;
  if (o.mode === 'watch') why = 'watch mode asked for';
  else if ((o.uid ?? process.getuid?.() ?? -1) !== 0) why = 'not root: cannot mount images';
  else if (!tools) why = 'mkfs.ext4, mount or umount not found';
  else why = await probeLoop(tools, o.workDir);
  if (tools && why === '') {
    o.log.info('executor.disk-limit', { mode: 'loop', pollMs, note: 'each build with a disk limit gets a loop-mounted ext4 image of that size' });
    return loopLimits(tools, pollMs, o.log);
  }
  o.log.warn('executor.disk-limit', { mode: 'watch', pollMs, reason: why, note: `build dirs are measured every ${pollMs} ms; a build past its limit is killed` });
  return watchLimits(pollMs);
}

function loopLimits(tools: LoopTools, pollMs: number, log: Logger): DiskLimits {
  const watch = watchLimits(pollMs);
  return {
    mode: 'loop',
    async limit(dir, limitMb) {
      const image = imageOf(dir);
      try {
        await mountImage(tools, image, dir, limitMb);
      } catch (err) {
        // Loop devices run out under many parallel builds; a watched limit beats a failed build.
        log.warn('executor.disk-limit', { mode: 'watch', dir, limitMb, reason: err instanceof Error ? err.message : String(err) });
        return watch.limit(dir, limitMb);
      }
      // A build sees an empty dir, as without a limit.
      await fs.rmdir(join(dir, 'lost+found')).catch(() => undefined);
      return {
        mode: 'loop',
        limitMb,
        pollMs,
        exceeded: async () => {
          const st = await fs.statfs(dir).catch(() => undefined);
          return st !== undefined && st.bavail * st.bsize < FULL_BELOW_BYTES;
        },
        release: () => unmountImage(tools, image, dir),
      };
    },
  };
}

function watchLimits(pollMs: number): DiskLimits {
  return {
    mode: 'watch',
    async limit(dir, limitMb) {
      const limitBytes = limitMb * 1024 * 1024;
      return {
        mode: 'watch',
        limitMb,
        pollMs,
        exceeded: async () => (await dirUsageBytes(dir, limitBytes).catch(() => 0)) > limitBytes,
        release: async () => undefined,
      };
    },
  };
}

/**
 * Unmounts what builds of a crashed agent left mounted below `workDir` (their images), so the
 * leftovers can be removed; returns the mount points. Only for a dir no live agent uses.
 */
export async function unmountBelow(workDir: string, binDirs = DEFAULT_BIN_DIRS): Promise<string[]> {
  const points = await mountsBelow(await fs.realpath(workDir).catch(() => workDir));
  if (points.length === 0) return [];
  const tools = await findTools(binDirs);
  if (!tools) return [];
  for (const p of points) await unmount(tools, p).catch(() => undefined);
  return points;
}

/** The image beside the dir, so removing the work dir's contents removes it too. */
function imageOf(dir: string): string {
  return join(dirname(dir), `.${basename(dir)}.disk.img`);
}

/** '' when a loop mount works in `workDir`, else why not. */
async function probeLoop(tools: LoopTools, workDir: string): Promise<string> {
  await fs.mkdir(workDir, { recursive: true });
  const dir = await fs.mkdtemp(join(workDir, '.disk-probe-'));
  const image = imageOf(dir);
  try {
    await mountImage(tools, image, dir, PROBE_MB);
    await unmountImage(tools, image, dir);
    return '';
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    await fs.rm(image, { force: true });
    await fs.rmdir(dir).catch(() => undefined);
  }
}

async function findTools(dirs: string[]): Promise<LoopTools | undefined> {
  const find = async (name: string): Promise<string | undefined> => {
    for (const d of dirs) {
      const p = join(d, name);
      if (await fs.access(p, 1 /* X_OK */).then(() => true, () => false)) return p;
    }
    return undefined;
  };
  const [mkfs, mount, umount] = await Promise.all([find('mkfs.ext4'), find('mount'), find('umount')]);
  return mkfs && mount && umount ? { mkfs, mount, umount } : undefined;
}
