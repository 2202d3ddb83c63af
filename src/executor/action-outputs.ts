import { constants, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { checkSymlinkTarget, InvalidTreeError, type OutputRefusalCode } from '../cas';

/** One regular output file found after the run, before it is stored. */
export interface CollectedOutput {
  /** Relative to the action's working directory, `/`-separated (`dir/sub/file`). */
  path: string;
  /** Absolute path of the (real) file to store. */
  abs: string;
  /** 0o755 when any x bit was set, else 0o644. */
  mode: number;
  /**
   * Opens the very file that was inspected (same device and inode, still a regular file, still
   * inside the work directory), never a symlink: a build racing to swap the file for a link to
   * a secret makes the open fail instead of handing the agent the secret.
   */
  open(): Promise<FileHandle>;
}

/** An output that is a symlink, kept as a link (REAPI results): `target` is its text. */
export interface CollectedSymlink {
  path: string;
  target: string;
}

/** What {@link collectOutputs} found. */
export interface CollectedOutputs {
  files: CollectedOutput[];
  /** Empty unless symlinks are kept. */
  symlinks: CollectedSymlink[];
  /** Every directory walked: the declared output directories and everything below them, empty ones included. */
  directories: string[];
}

/** An output that must not be stored: it escapes the work directory or is not a plain file. */
export class OutputRejected extends Error {
  constructor(
    readonly reason: string,
    readonly outputPath: string,
    /** `symlink-target`: a kept symlink that is absolute or climbs out of the work directory. */
    readonly code: OutputRefusalCode = reason === ESCAPES ? 'escapes' : 'not-regular',
  ) {
    super(`${reason}: ${outputPath}`);
  }
}

export const ESCAPES = 'output path escapes the work directory';

/** Options of {@link collectOutputs}. */
export interface CollectOptions {
  /**
   * `keep`: symlinks are outputs of their own (REAPI: OutputSymlink, SymlinkNode), reported with
   * their target text and never followed; a target that is absolute or climbs out of the work
   * directory refuses the outputs (code `symlink-target`). `resolve`: spillway's own results hold
   * regular files only, so a symlink inside an output directory is stored as the regular file it
   * leads to inside the work directory, and a declared output that is a symlink is refused.
   * @defaultValue 'resolve'
   */
  symlinks?: 'keep' | 'resolve';
}

const linux = process.platform === 'linux';
const FILE_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;
const DIR_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_DIRECTORY;

/**
 * Finds the declared outputs under `cwd` (which lies inside `workDir`). A declared output that
 * does not exist is simply absent. Everything must be provably inside the work directory:
 * absolute paths, `..`, and any path whose real location (after resolving symlinked parent
 * directories of a declared output) lies outside `workDir` are rejected with {@link ESCAPES};
 * fifos, sockets and devices are rejected. Symlinks as {@link CollectOptions.symlinks} says.
 *
 * The build may still be racing (a process it left behind, under the build user): directories
 * are opened with O_NOFOLLOW and their entries looked up through the open descriptor
 * (`/proc/self/fd/N/name`, Linux's openat), so swapping a directory for a symlink after it was
 * checked cannot redirect the walk, and every descriptor is checked against the lstat it was
 * chosen by (device, inode, type) and against its real path.
 * @throws OutputRejected
 */
export async function collectOutputs(
  workDir: string,
  cwd: string,
  outputFiles: readonly string[],
  outputDirs: readonly string[],
  /** Outputs of either kind (REAPI's `output_paths`): a directory is walked, a file taken. */
  outputPaths: readonly string[] = [],
  options: CollectOptions = {},
): Promise<CollectedOutputs> {
  const keep = options.symlinks === 'keep';
  const realWork = await fsp.realpath(workDir);
  const inside = (real: string): boolean => real === realWork || real.startsWith(realWork + path.sep);
  // How deep `cwd` lies below the work directory, for judging a kept symlink's `..`s.
  const cwdDepth = path.relative(workDir, cwd).split(path.sep).filter((s) => s !== '').length;
  const files = new Map<string, CollectedOutput>();
  const symlinks = new Map<string, CollectedSymlink>();
  const directories = new Set<string>();

  const fileAt = (rel: string, abs: string, st: Stats): void => {
    files.set(rel, { path: rel, abs, mode: modeOf(st), open: () => openChecked(abs, st, inside, rel) });
  };
  const keepLink = async (rel: string, at: string): Promise<void> => {
    const target = await fsp.readlink(at);
    try {
      checkSymlinkTarget(target, cwdDepth + rel.split('/').length - 1, rel);
    } catch (err) {
      if (err instanceof InvalidTreeError) throw new OutputRejected(`output symlink target ${JSON.stringify(target)} is absolute or leads out of the work directory`, rel, 'symlink-target');
      throw err;
    }
    symlinks.set(rel, { path: rel, target });
  };

  /** A declared output's open parent directory and lstat, undefined when absent. */
  const declared = async (rel: string): Promise<{ parent: OpenDir; at: string; st: Stats } | undefined> => {
    checkRelative(rel);
    let real: string;
    try {
      real = await fsp.realpath(path.dirname(path.join(cwd, rel)));
    } catch (err) {
      if (isAbsent(err)) return undefined;
      throw err;
    }
    if (!inside(real)) throw new OutputRejected(ESCAPES, rel);
    const parent = await openDir(real, undefined, inside, rel);
    const at = path.join(parent.ref, path.basename(rel));
    const st = await lstatOptional(at).catch(async (err: unknown) => {
      await parent.handle.close();
      throw err;
    });
    if (!st) {
      await parent.handle.close();
      return undefined;
    }
    return { parent, at, st };
  };

  const take = async (rel: string, kind: 'file' | 'dir' | 'any'): Promise<void> => {
    const found = await declared(rel);
    if (!found) return;
    const { parent, at, st } = found;
    try {
      if (st.isSymbolicLink()) {
        if (!keep) throw new OutputRejected(ESCAPES, rel);
        await keepLink(rel, at);
      } else if (st.isDirectory() && kind !== 'file') {
        const dir = await openDir(at, st, inside, rel);
        try {
          await walk(dir, rel);
        } finally {
          await dir.handle.close();
        }
      } else if (st.isFile() && kind !== 'dir') {
        fileAt(rel, path.join(parent.real, path.basename(rel)), st);
      } else {
        const what = { file: 'declared output file is not a regular file', dir: 'declared output directory is not a directory', any: 'declared output is neither a regular file nor a directory' };
        throw new OutputRejected(what[kind], rel);
      }
    } finally {
      await parent.handle.close();
    }
  };

  for (const rel of outputFiles) await take(rel, 'file');
  for (const rel of outputDirs) await take(rel, 'dir');
  for (const rel of outputPaths) await take(rel, 'any');
  const sorted = <T extends { path: string }>(m: Map<string, T>): T[] => [...m.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { files: sorted(files), symlinks: sorted(symlinks), directories: [...directories].sort() };

  async function walk(dir: OpenDir, rel: string): Promise<void> {
    directories.add(rel);
    for (const name of (await fsp.readdir(dir.ref)).sort()) {
      const at = path.join(dir.ref, name);
      const r = `${rel}/${name}`;
      const st = await fsp.lstat(at);
      if (st.isSymbolicLink()) {
        if (keep) {
          await keepLink(r, at);
          continue;
        }
        let real: string;
        try {
          real = await fsp.realpath(at);
        } catch {
          throw new OutputRejected('dangling symlink in output directory', r);
        }
        if (!inside(real)) throw new OutputRejected(ESCAPES, r);
        const target = await fsp.stat(real);
        if (!target.isFile()) throw new OutputRejected('symlink in output directory does not point to a regular file', r);
        fileAt(r, real, target);
      } else if (st.isDirectory()) {
        const sub = await openDir(at, st, inside, r);
        try {
          await walk(sub, r);
        } finally {
          await sub.handle.close();
        }
      } else if (st.isFile()) {
        fileAt(r, path.join(dir.real, name), st);
      } else {
        throw new OutputRejected('special file in output directory', r);
      }
    }
  }
}

/** An open directory: `ref` names it for lookups below it (through the descriptor on Linux), `real` is where it is. */
interface OpenDir {
  handle: FileHandle;
  ref: string;
  real: string;
}

/** Opens a directory without following a final symlink and checks the descriptor is the directory `expected` describes, inside the work directory. */
async function openDir(at: string, expected: Stats | undefined, inside: (real: string) => boolean, rel: string): Promise<OpenDir> {
  let handle: FileHandle;
  try {
    handle = await fsp.open(at, DIR_FLAGS);
  } catch (err) {
    if (isCode(err, 'ELOOP') || isCode(err, 'ENOTDIR')) throw new OutputRejected('output directory changed while it was read (a symlink now)', rel);
    throw err;
  }
  try {
    const st = await handle.stat();
    if (!st.isDirectory() || (expected && !sameFile(st, expected))) throw new OutputRejected('output directory changed while it was read', rel);
    const real = linux ? await fsp.readlink(fdPath(handle)) : await fsp.realpath(at);
    if (!inside(real)) throw new OutputRejected(ESCAPES, rel);
    return { handle, ref: linux ? fdPath(handle) : at, real };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** Opens the regular file `expected` describes at `abs`, refusing a symlink, another inode, a special file or a place outside the work directory. */
async function openChecked(abs: string, expected: Stats, inside: (real: string) => boolean, rel: string): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await fsp.open(abs, FILE_FLAGS);
  } catch (err) {
    if (isCode(err, 'ELOOP')) throw new OutputRejected('output file was replaced by a symlink while it was read', rel);
    if (isAbsent(err)) throw new OutputRejected('output file changed while it was read (gone)', rel);
    throw err;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile() || !sameFile(st, expected)) throw new OutputRejected('output file changed while it was read (not the file that was checked)', rel);
    if (linux && !inside(await fsp.readlink(fdPath(handle)))) throw new OutputRejected(ESCAPES, rel);
    return handle;
  } catch (err) {
    await handle.close();
    throw err;
  }
}

const fdPath = (h: FileHandle): string => `/proc/self/fd/${h.fd}`;
const sameFile = (a: Stats, b: Stats): boolean => a.dev === b.dev && a.ino === b.ino;
const isCode = (err: unknown, code: string): boolean => (err as NodeJS.ErrnoException).code === code;
const isAbsent = (err: unknown): boolean => isCode(err, 'ENOENT') || isCode(err, 'ENOTDIR');

function checkRelative(rel: string): void {
  if (rel === '' || rel.startsWith('/') || rel.includes('\0') || rel.split('/').some((s) => s === '..' || s === '' || s === '.')) {
    throw new OutputRejected(ESCAPES, rel);
  }
}

async function lstatOptional(p: string): Promise<Stats | undefined> {
  try {
    return await fsp.lstat(p);
  } catch (err) {
    if (isAbsent(err)) return undefined;
    throw err;
  }
}

function modeOf(st: Stats): number {
  return (st.mode & 0o111) !== 0 ? 0o755 : 0o644;
}
