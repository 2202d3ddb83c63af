import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { BatchedWriter } from './batched-writer';
import type { Digest } from './digest';
import type { ExpectedBlob } from './blob-store';
import { BadDigestError, DigestMismatchError } from './errors';
import { isHash } from './digest';

type Source = AsyncIterable<Buffer | Uint8Array>;

/**
 * Streams `source` into a new file at `tmp` (which must not exist), hashing as it goes, and
 * fsyncs it; stops early once the body outgrows `expectedSize`. Returns what was written.
 */
export async function writeHashedTemp(source: Source, tmp: string, expectedSize: number | undefined): Promise<Digest> {
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
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { hash: hasher.digest('hex'), size };
}

/** Refuses a malformed expectation before any byte is written. */
export function checkExpected(expected: ExpectedBlob): void {
  if (expected.hash !== undefined) checkHash(expected.hash);
  if (expected.size !== undefined && !(Number.isSafeInteger(expected.size) && expected.size >= 0)) {
    throw new BadDigestError(`bad blob size ${expected.size}`);
  }
}

/** Like {@link writeHashedTemp}, and fails unless what was written is `expected`. */
export async function writeExpectedTemp(source: Source, tmp: string, expected: ExpectedBlob): Promise<Digest> {
  const actual = await writeHashedTemp(source, tmp, expected.size);
  const hash = expected.hash ?? actual.hash;
  if (actual.hash !== hash || (expected.size !== undefined && actual.size !== expected.size)) {
    throw new DigestMismatchError(`upload does not match its digest: expected ${hash}/${expected.size ?? '?'}, got ${actual.hash}/${actual.size}`);
  }
  return actual;
}

export function checkHash(hash: string): string {
  if (!isHash(hash)) throw new BadDigestError(`bad blob hash (want 64 lower-case hex): ${String(hash).slice(0, 80)}`);
  return hash;
}
