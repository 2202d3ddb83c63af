import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SpillwayError } from '../lib';
import type { VpnFile } from './vpn-files';

/** Files `spillway vpn init` would overwrite; nothing was written. */
export class FilesExistError extends SpillwayError {
  readonly code = 'SPILLWAY_E_FILES_EXIST';
  readonly disposition = 'fatal';
  constructor(readonly paths: readonly string[]) {
    super(`refusing to overwrite existing files (use --force to replace them):\n  ${paths.join('\n  ')}`);
  }
}

/**
 * Writes the files under `outDir`, all or nothing as far as existing files go: if any exists
 * and `force` is off, nothing is written. Directories holding keys are made 0700.
 */
export function writeVpnFiles(outDir: string, files: readonly VpnFile[], o: { force?: boolean } = {}): string[] {
  const targets = files.map((f) => ({ ...f, full: join(outDir, f.path) }));
  const existing = targets.filter((t) => existsSync(t.full)).map((t) => t.full);
  if (existing.length > 0 && !o.force) throw new FilesExistError(existing);
  for (const t of targets) {
    mkdirSync(dirname(t.full), { recursive: true, mode: 0o700 });
    writeFileSync(t.full, t.content, { mode: t.mode });
    // writeFile's mode applies only to a new file (and through the umask): a replaced one keeps its old mode otherwise.
    chmodSync(t.full, t.mode);
  }
  return targets.map((t) => t.full);
}
