import { promises as fsp, type Stats } from 'node:fs';
import * as path from 'node:path';

/** One output found after the run, before it is stored. */
export interface CollectedOutput {
  /** Relative to the action's working directory, `/`-separated (`dir/sub/file`). */
  path: string;
  /** Absolute path of the (real) file to store. */
  abs: string;
  /** 0o755 when any x bit was set, else 0o644. */
  mode: number;
}

/** An output that must not be stored: it escapes the work directory or is not a plain file. */
export class OutputRejected extends Error {
  constructor(
    readonly reason: string,
    readonly outputPath: string,
  ) {
    super(`${reason}: ${outputPath}`);
  }
}

export const ESCAPES = 'output path escapes the work directory';

/**
 * Finds the declared outputs under `cwd` (which lies inside `workDir`). A declared output file
 * that does not exist is simply absent. Everything else must be provably inside the work
 * directory: absolute paths, `..`, a declared file that is a symlink, and any path whose real
 * location (after resolving symlinked parent directories) lies outside `workDir` are rejected
 * with {@link ESCAPES}. Inside a declared directory, a symlink to a regular file inside the
 * work directory is stored as that file; one leading outside is rejected the same way;
 * symlinked directories and special files are rejected (results hold regular files only).
 * @throws OutputRejected
 */
export async function collectOutputs(
  workDir: string,
  cwd: string,
  outputFiles: readonly string[],
  outputDirs: readonly string[],
  /** Outputs of either kind (REAPI's `output_paths`): a directory is walked, a file taken. */
  outputPaths: readonly string[] = [],
): Promise<CollectedOutput[]> {
  const realWork = await fsp.realpath(workDir);
  const inside = (real: string): boolean => real === realWork || real.startsWith(realWork + path.sep);
  const out = new Map<string, CollectedOutput>();

  /** The real location of `rel`'s parent directory, or undefined when it does not exist. */
  const realParent = async (rel: string): Promise<string | undefined> => {
    checkRelative(rel);
    try {
      const real = await fsp.realpath(path.dirname(path.join(cwd, rel)));
      if (!inside(real)) throw new OutputRejected(ESCAPES, rel);
      return real;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw err;
    }
  };

  /** A declared output's path and lstat, undefined when absent; a symlink is always refused. */
  const declared = async (rel: string): Promise<{ abs: string; st: Stats } | undefined> => {
    const parent = await realParent(rel);
    if (parent === undefined) return undefined;
    const abs = path.join(parent, path.basename(rel));
    const st = await lstatOptional(abs);
    if (!st) return undefined;
    if (st.isSymbolicLink()) throw new OutputRejected(ESCAPES, rel);
    return { abs, st };
  };

  for (const rel of outputFiles) {
    const found = await declared(rel);
    if (!found) continue;
    if (!found.st.isFile()) throw new OutputRejected('declared output file is not a regular file', rel);
    out.set(rel, { path: rel, abs: found.abs, mode: modeOf(found.st) });
  }

  for (const rel of outputDirs) {
    const found = await declared(rel);
    if (!found) continue;
    if (!found.st.isDirectory()) throw new OutputRejected('declared output directory is not a directory', rel);
    await walk(found.abs, rel);
  }
  for (const rel of outputPaths) {
    const found = await declared(rel);
    if (!found) continue;
    if (found.st.isDirectory()) await walk(found.abs, rel);
    else if (found.st.isFile()) out.set(rel, { path: rel, abs: found.abs, mode: modeOf(found.st) });
    else throw new OutputRejected('declared output is neither a regular file nor a directory', rel);
  }
  return [...out.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

  async function walk(dir: string, rel: string): Promise<void> {
    for (const name of (await fsp.readdir(dir)).sort()) {
      const abs = path.join(dir, name);
      const r = `${rel}/${name}`;
      let st = await fsp.lstat(abs);
      let file = abs;
      if (st.isSymbolicLink()) {
        let real: string;
        try {
          real = await fsp.realpath(abs);
        } catch {
          throw new OutputRejected('dangling symlink in output directory', r);
        }
        if (!inside(real)) throw new OutputRejected(ESCAPES, r);
        st = await fsp.stat(real);
        if (!st.isFile()) throw new OutputRejected('symlink in output directory does not point to a regular file', r);
        file = real;
      }
      if (st.isDirectory()) await walk(abs, r);
      else if (st.isFile()) out.set(r, { path: r, abs: file, mode: modeOf(st) });
      else throw new OutputRejected('special file in output directory', r);
    }
  }
}

function checkRelative(rel: string): void {
  if (rel === '' || rel.startsWith('/') || rel.includes('\0') || rel.split('/').some((s) => s === '..' || s === '' || s === '.')) {
    throw new OutputRejected(ESCAPES, rel);
  }
}

async function lstatOptional(p: string): Promise<Stats | undefined> {
  try {
    return await fsp.lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function modeOf(st: Stats): number {
  return (st.mode & 0o111) !== 0 ? 0o755 : 0o644;
}
