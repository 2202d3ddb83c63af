import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { BatchedWriter } from './batched-writer';
import type { Digest } from './digest';
import { DigestMismatchError } from './errors';

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
