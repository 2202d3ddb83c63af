import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { Digest } from './digest';
import { BlobCorruptError } from './errors';

/**
 * Passes a blob's bytes through while hashing them, and holds back the final chunk until the
 * hash and size have been checked. A corrupted blob therefore never reaches a reader in full:
 * the stream errors with `BlobCorruptError` before its last bytes, so an HTTP client sees a
 * short (failed) response instead of a complete one with wrong content.
 */
export class VerifyStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;
  private held: Buffer | undefined;

  constructor(
    private readonly expected: Digest,
    private readonly onCorrupt: (actual: Digest) => Promise<void>,
    private readonly onVerified: () => void = () => undefined,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    if (this.held) this.push(this.held);
    this.held = chunk;
    if (this.bytes > this.expected.size) return this.fail(done);
    done();
  }

  override _flush(done: TransformCallback): void {
    const actual = this.hash.digest('hex');
    if (actual !== this.expected.hash || this.bytes !== this.expected.size) return this.fail(done, actual);
    if (this.held) this.push(this.held);
    this.onVerified();
    done();
  }

  // The error is raised only once the store has removed the file, so a reader that retries
  // after the error sees a clean miss.
  private fail(done: TransformCallback, actual = '(unfinished)'): void {
    const err = new BlobCorruptError(
      `blob ${this.expected.hash}/${this.expected.size} is corrupt on disk (read ${actual}/${this.bytes}); removed`,
    );
    this.onCorrupt({ hash: actual, size: this.bytes }).then(
      () => done(err),
      () => done(err),
    );
  }
}
