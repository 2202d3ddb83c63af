import { promises as fsp } from 'node:fs';

/**
 * Writes `bytes` to a new file at `file` and fsyncs it before closing: the first half of every
 * crash-safe replacement here (a temp file, then a rename the caller makes).
 */
export async function writeSyncedFile(file: string, bytes: Buffer | string, flag: 'w' | 'wx' = 'wx'): Promise<void> {
  const fh = await fsp.open(file, flag);
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
}
