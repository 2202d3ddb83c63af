import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

/** The two-hex-digit fan-out directories of `cas/` (`cas/ab/<hash>`). */
const FAN_OUT = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * Creates all 256 fan-out directories under `casDir` once, when the store opens, so that no
 * PUT pays a mkdir (a thread-pool round trip) before its rename.
 */
export async function createBlobDirs(casDir: string): Promise<void> {
  await fsp.mkdir(casDir, { recursive: true });
  await Promise.all(FAN_OUT.map((d) => fsp.mkdir(path.join(casDir, d), { recursive: true })));
}

/** Where the blob `hash` lives under the store's `root`. */
export function blobFilePath(root: string, hash: string): string {
  return path.join(root, 'cas', hash.slice(0, 2), hash);
}
