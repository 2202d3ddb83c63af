import { Readable } from 'node:stream';
import { openBlobFile, readBlobFile } from './blob-file';
import type { BlobReader } from './blob-store';
import type { Digest } from './digest';
import { VerifyStream } from './verify-stream';

/** What a reader of blob files reports back to whoever keeps the index. */
export interface BlobFileHooks {
  blobPath(hash: string): string;
  /** The file failed its check: the index owner counts it and removes the blob. */
  corrupt(expected: Digest, actual: Digest): Promise<void>;
  /** The index named a blob whose file is gone. */
  missing(hash: string): Promise<void>;
  /** The file hashed to its name: later reads need not hash it again. */
  verified(hash: string): void;
}

/** Blobs under this size are read whole, once for all concurrent readers; larger ones stream. */
const SHARED_READ_MAX_BYTES = 1024 * 1024;

/**
 * Reads blob files so that a corrupt one is never handed out: small blobs whole (verified
 * before anyone sees a byte unless already verified), large ones hashed first up to
 * `verifyFirstMaxBytes`, above that verified while they stream (see {@link VerifyStream}).
 * Shared by the disk store, which owns the index, and the cache workers, which read the same
 * files and report to the process that owns it.
 */
export class VerifiedReads {
  private readonly sharedReads = new Map<string, Promise<Buffer | undefined>>();

  constructor(
    private readonly hooks: BlobFileHooks,
    private readonly verifyFirstMaxBytes: number,
  ) {}

  /** `verified` is asked at the moment of reading: a concurrent read may just have verified it. */
  async open(digest: Digest, verified: () => boolean): Promise<BlobReader | undefined> {
    if (digest.size >= SHARED_READ_MAX_BYTES) return this.openLarge(digest, verified());
    // Concurrent GETs of one small blob (a popular header, an action's stdout) share one
    // read and one verification instead of each opening, statting and hashing the file.
    let read = this.sharedReads.get(digest.hash);
    if (!read) {
      read = this.readWhole(digest, verified()).finally(() => this.sharedReads.delete(digest.hash));
      this.sharedReads.set(digest.hash, read);
    }
    const data = await read;
    return data && { digest: { ...digest }, data, stream: Readable.from([data]) };
  }

  private async readWhole(digest: Digest, verified: boolean): Promise<Buffer | undefined> {
    const read = await readBlobFile(this.hooks.blobPath(digest.hash), digest, !verified);
    if (read.kind === 'data') {
      if (!verified) this.hooks.verified(digest.hash);
      return read.data;
    }
    await (read.kind === 'missing' ? this.hooks.missing(digest.hash) : this.hooks.corrupt(digest, read.actual));
    return undefined;
  }

  private async openLarge(digest: Digest, verified: boolean): Promise<BlobReader | undefined> {
    const hashFirst = !verified && digest.size <= this.verifyFirstMaxBytes;
    const opened = await openBlobFile(this.hooks.blobPath(digest.hash), digest, hashFirst);
    if (opened.kind !== 'open') {
      await (opened.kind === 'missing' ? this.hooks.missing(digest.hash) : this.hooks.corrupt(digest, opened.actual));
      return undefined;
    }
    if (hashFirst) this.hooks.verified(digest.hash);
    const raw = opened.fh.createReadStream({ start: 0, highWaterMark: 1024 * 1024 });
    if (verified || hashFirst) return { digest: { ...digest }, stream: raw };
    const verify = new VerifyStream(
      digest,
      (actual) => this.hooks.corrupt(digest, actual),
      () => this.hooks.verified(digest.hash),
    );
    raw.on('error', (err) => verify.destroy(err));
    verify.on('close', () => raw.destroy());
    return { digest: { ...digest }, stream: raw.pipe(verify) };
  }
}
