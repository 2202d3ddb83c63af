import { chmod, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PreparedStateDir {
  dir: string;
  /** Removed when the agent stops (a temp dir of its own). */
  owned: boolean;
}

/** Build output not yet confirmed by a master: meaningless to a later agent process. */
const SPILLED_LOG = /^log-\d+\.jsonl$/;

/**
 * The agent's own files (build output the master has not confirmed yet), 0700 and apart from
 * the work dir, so builds — running as another user, or below the work dir — cannot read or
 * change what is resent in their name. Leftovers of an earlier agent process are removed.
 */
export async function prepareStateDir(dir: string | undefined, name: string): Promise<PreparedStateDir> {
  if (dir === undefined) return { dir: await mkdtemp(join(tmpdir(), `spillway-agent-state-${name}-`)), owned: true };
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  for (const entry of await readdir(dir)) if (SPILLED_LOG.test(entry)) await rm(join(dir, entry), { force: true });
  return { dir, owned: false };
}
