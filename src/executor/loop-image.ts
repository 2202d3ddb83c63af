import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The programs a loop-mounted image needs; absent ones make the mode unavailable. */
export interface LoopTools {
  mkfs: string;
  mount: string;
  umount: string;
}

/**
 * Makes `image` a sparse ext4 filesystem of `sizeMb` and mounts it on `dir`. No journal and
 * no reserved blocks, so nearly all of the size is the build's: a 1 MiB journal would be a
 * large share of a small limit. Sparse, so it takes from the host only what the build writes.
 */
export async function mountImage(tools: LoopTools, image: string, dir: string, sizeMb: number): Promise<void> {
  const handle = await fs.open(image, 'wx', 0o600);
  try {
    await handle.truncate(sizeMb * 1024 * 1024);
  } finally {
    await handle.close();
  }
  try {
    await run(tools.mkfs, ['-q', '-F', '-m', '0', '-O', '^has_journal', '-E', 'nodiscard', image], { timeout: 30_000 });
    await run(tools.mount, ['-o', 'loop,nosuid,nodev', image, dir], { timeout: 30_000 });
  } catch (err) {
    await fs.rm(image, { force: true });
    throw new Error(`cannot mount a ${sizeMb} MiB image on ${dir}: ${firstLine(err)}`);
  }
}

/**
 * Unmounts `dir` (lazily when something still holds it: the build's processes are gone by
 * now, a straggling open file must not keep the image around) and removes the image.
 */
export async function unmountImage(tools: LoopTools, image: string, dir: string): Promise<void> {
  try {
    await run(tools.umount, [dir], { timeout: 30_000 });
  } catch {
    await run(tools.umount, ['-l', dir], { timeout: 30_000 }).catch(() => undefined);
  }
  await fs.rm(image, { force: true });
}

/** Mount points below `root` (deepest first), from /proc/self/mountinfo. */
export async function mountsBelow(root: string, mountinfo = '/proc/self/mountinfo'): Promise<string[]> {
  const text = await fs.readFile(mountinfo, 'utf8').catch(() => '');
  const prefix = root.endsWith('/') ? root : `${root}/`;
  const points = text
    .split('\n')
    .map((line) => line.split(' ')[4])
    // mountinfo escapes space, tab, newline and backslash as octal.
    .map((p) => p?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p): p is string => p !== undefined && p.startsWith(prefix));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

export async function unmount(tools: LoopTools, dir: string): Promise<void> {
  await run(tools.umount, ['-l', dir], { timeout: 30_000 });
}

function firstLine(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  return (e.stderr?.trim() || e.message || String(err)).split('\n')[0] as string;
}
