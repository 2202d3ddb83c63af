import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildOwner, unmountBelow, unreachableBy, type BuildIdentity } from '../executor';
import { processAlive, type Logger } from '../lib';

/** Names the agent that uses a work dir: its pid, so a later start can tell a crash from a neighbour. */
const MARKER = '.spillway-agent';

export interface PreparedWorkDir {
  dir: string;
  /** Removed when the agent stops (a temp dir of its own). */
  owned: boolean;
}

/**
 * Makes the directory builds run below, and removes what builds of a crashed agent left in
 * it: a dir marked by a process that no longer exists is swept; a dir with no marker is only
 * swept when it was empty (it may be the operator's), and one held by a live agent is left
 * alone. Without `--work-dir` the dir is named after the agent, so its next start finds the
 * leftovers; a second agent of that name in the same TMPDIR gets a fresh temp dir instead.
 * With a build user the dir is 0711: builds reach their own 0700 dir but cannot list others.
 * @throws Error when the build user could not reach its build dirs
 */
export async function prepareWorkDir(o: { workDir: string | undefined; name: string; identity: BuildIdentity | undefined; log: Logger }): Promise<PreparedWorkDir> {
  const explicit = o.workDir !== undefined;
  let dir = o.workDir ?? join(tmpdir(), `spillway-agent-work-${o.name}`);
  await mkdir(dir, { recursive: true });
  let claimed = await claim(dir, o.log, explicit);
  if (!claimed && !explicit) {
    dir = await mkdtemp(join(tmpdir(), `spillway-agent-${o.name}-`));
    claimed = await claim(dir, o.log, false);
  }
  const owner = buildOwner(o.identity);
  if (owner) {
    await chmod(dir, 0o711);
    const problem = await unreachableBy(join(dir, 'build'), owner);
    if (problem) throw new Error(`work dir ${dir}: ${problem}`);
  }
  return { dir, owned: !explicit };
}

/** Removes the marker, if it is still this process's. */
export async function releaseWorkDir(dir: string): Promise<void> {
  const holder = await readFile(join(dir, MARKER), 'utf8').catch(() => '');
  if (Number(holder.trim()) === process.pid) await rm(join(dir, MARKER), { force: true });
}

async function claim(dir: string, log: Logger, explicit: boolean): Promise<boolean> {
  const marker = join(dir, MARKER);
  const holder = Number((await readFile(marker, 'utf8').catch(() => '')).trim());
  const entries = (await readdir(dir)).filter((n) => n !== MARKER);
  if (Number.isInteger(holder) && holder > 0 && processAlive(holder)) {
    if (explicit) log.warn('agent.workdir-not-swept', { dir, reason: `in use by the agent process ${holder}` });
    return false;
  }
  if (!(Number.isInteger(holder) && holder > 0) && entries.length > 0) {
    // Never marked by an agent: not ours to empty, and not to mark either.
    log.warn('agent.workdir-not-swept', { dir, reason: 'not an agent work dir (no marker) and not empty', entries: entries.length });
    return true;
  }
  // A crashed agent's builds may still have their disk images mounted here.
  const unmounted = entries.length > 0 ? await unmountBelow(dir) : [];
  for (const name of entries) await rm(join(dir, name), { recursive: true, force: true });
  if (entries.length > 0) log.warn('agent.workdir-swept', { dir, removed: entries.length, unmounted: unmounted.length, reason: `left by agent process ${holder}, which is gone` });
  // A full disk must not stop the agent: without the marker a later start only sweeps less.
  await writeFile(marker, `${process.pid}\n`).catch((err: unknown) => log.warn('agent.state-write-failed', { file: marker, error: String(err) }));
  return true;
}
