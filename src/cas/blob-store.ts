import type { Readable } from 'node:stream';
import type { Digest } from './digest';

/** What a blob is written from: a stream, or any iterable of chunks. */
export type Source = Readable | AsyncIterable<Buffer | Uint8Array>;

/**
 * What a blob must hash to. `size` is optional because HTTP PUTs name only the hash; `hash`
 * is optional for values stored under whatever they hash to (the raw action-cache namespace).
 */
export interface ExpectedBlob {
  hash?: string;
  size?: number;
}

/** Result of a store's `put`. `stored` is false when the blob was already present. */
export interface PutResult {
  digest: Digest;
  stored: boolean;
}

/** A blob being read. `stream` errors with `BlobCorruptError` if the file fails verification. */
export interface BlobReader {
  digest: Digest;
  stream: Readable;
}
