import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { BatchedWriter } from './batched-writer';
import type { Digest } from './digest';
import type { ExpectedBlob } from './blob-store';
import { BadDigestError, DigestMismatchError } from './errors';
import { isHash } from './digest';

type Source = AsyncIterable<Buffer | Uint8Array>;

/** An upload written to its temp file and hashed: not yet fsynced, its handle still open. */
export interface WrittenUpload {
  digest: Digest;
  /** The temp file's handle; whoever gets it closes it (after fsyncing it, see BlobSync). */
  fh: FileHandle;
}

/**
 * Streams `source` into a new file at `tmp` (which must not exist), hashing as it goes; stops
 * early once the body outgrows `expectedSize`. Does not fsync: the caller syncs the file after
 * its rename (one fsync then covers the data and, on ext4, the new name; see BlobSync).
 */
export async function writeHashedTemp(source: Source, tmp: string, expectedSize: number | undefined): Promise<WrittenUpload> {
  const hasher = createHash('sha256');
  let size = 0;
  const fh = await fsp.open(tmp, 'wx');
  const out = new BatchedWriter(fh);
  try {
    for await (const chunk of source) {
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
      size += buf.length;
      // Stop reading a body that is already too long instead of filling the disk with it.
      if (expectedSize !== undefined && size > expectedSize) {
        throw new DigestMismatchError(`upload is longer than its declared size ${expectedSize}`);
      }
      hasher.update(buf);
      await out.write(buf);
    }
    await out.flush();
  } catch (err) {
    await fh.close();
    throw err;
  }
  return { digest: { hash: hasher.digest('hex'), size }, fh };
}

/** Refuses a malformed expectation before any byte is written. */
export function checkExpected(expected: ExpectedBlob): void {
  if (expected.hash !== undefined) checkHash(expected.hash);
  if (expected.size !== undefined && !(Number.isSafeInteger(expected.size) && expected.size >= 0)) {
    throw new BadDigestError(`bad blob size ${expected.size}`);
  }
}

/** Like {@link writeHashedTemp}, and fails unless what was written is `expected`. */
export async function writeExpectedTemp(source: Source, tmp: string, expected: ExpectedBlob): Promise<WrittenUpload> {
  const written = await writeHashedTemp(source, tmp, expected.size);
  const actual = written.digest;
  const hash = expected.hash ?? actual.hash;
  if (actual.hash !== hash || (expected.size !== undefined && actual.size !== expected.size)) {
    await written.fh.close();
    throw new DigestMismatchError(`upload does not match its digest: expected ${hash}/${expected.size ?? '?'}, got ${actual.hash}/${actual.size}`);
  }
  return written;
}

export function checkHash(hash: string): string {
  if (!isHash(hash)) throw new BadDigestError(`bad blob hash (want 64 lower-case hex): ${String(hash).slice(0, 80)}`);
  return hash;
}
