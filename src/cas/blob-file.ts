import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { digestOf, type Digest } from './digest';

const CHUNK_BYTES = 1024 * 1024;

/** A blob file opened for reading: absent, failing its check, or open and ready to stream. */
export type OpenedBlob = { kind: 'missing' } | { kind: 'corrupt'; actual: Digest } | { kind: 'open'; fh: fsp.FileHandle };

/**
 * Opens `file` and checks it against `expected`: always its size (one fstat), and its hash too
 * when `hashFirst`, so that a caller can refuse a corrupt blob before sending any of it.
 */
export async function openBlobFile(file: string, expected: Digest, hashFirst: boolean): Promise<OpenedBlob> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    throw err;
  }
  try {
    const { size } = await fh.stat();
    const actual = size !== expected.size ? { hash: '(not read)', size } : hashFirst ? await hashOpenFile(fh) : undefined;
    if (!actual || (actual.hash === expected.hash && actual.size === expected.size)) return { kind: 'open', fh };
    await fh.close();
    return { kind: 'corrupt', actual };
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** Reads a whole (small) blob file, checking its size, and its hash too when `hashIt`. */
export async function readBlobFile(file: string, expected: Digest, hashIt: boolean): Promise<{ kind: 'missing' } | { kind: 'corrupt'; actual: Digest } | { kind: 'data'; data: Buffer }> {
  let data: Buffer;
  try {
    data = await fsp.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    throw err;
  }
  const actual = hashIt ? digestOf(data) : { hash: expected.hash, size: data.length };
  return actual.hash === expected.hash && actual.size === expected.size ? { kind: 'data', data } : { kind: 'corrupt', actual };
}

/** Hashes a whole open file from offset 0 by positional reads, leaving its position alone. */
async function hashOpenFile(fh: fsp.FileHandle): Promise<Digest> {
  const hasher = createHash('sha256');
  const buf = Buffer.allocUnsafe(CHUNK_BYTES);
  let size = 0;
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, CHUNK_BYTES, size);
    if (bytesRead === 0) break;
    hasher.update(buf.subarray(0, bytesRead));
    size += bytesRead;
  }
  return { hash: hasher.digest('hex'), size };
}
