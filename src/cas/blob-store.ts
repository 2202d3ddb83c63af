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
  /** The whole blob, already verified, when the store holds it in memory (no stream needed). */
  data?: Buffer;
}

/**
 * The one interface of a content-addressed store (CONVENTIONS 5a): the disk store implements
 * it, and each further feature (the in-memory tier, ...) is a decorator around another
 * `BlobStore`, composed in the composition root and shared by the HTTP cache and the action
 * cache.
 */
export interface BlobStore {
  /**
   * Streams `source` in; resolves once the blob is stored under its hash (and durable, unless
   * the disk store syncs in the background: `cas.fsync`).
   * @throws DigestMismatchError when the bytes do not match `expected`
   */
  put(source: Source, expected?: ExpectedBlob): Promise<PutResult>;
  /** Opens a blob for reading, or undefined on a miss; never hands out unverified corrupt bytes. */
  get(hash: string): Promise<BlobReader | undefined>;
  has(digest: Digest): Promise<boolean>;
  /** The stored size of `hash`, or undefined when absent. */
  sizeOf(hash: string): Promise<number | undefined>;
  /** The digests not present, deduplicated, in request order; present ones count as used. */
  findMissing(digests: readonly Digest[]): Promise<Digest[]>;
  /** Removes a blob; resolves true when it was present. */
  delete(hash: string): Promise<boolean>;
  /**
   * Marks a blob recently used after a decorator served it without asking this store; false
   * when this store no longer holds it (evicted or deleted), so the decorator forgets it too.
   */
  touch(hash: string): boolean;
}

/**
 * The whole of a blob being read: its bytes when the store already holds them, or its stream
 * read to the end; undefined when the stream proved the blob corrupt (the store has removed it
 * by then). For blobs small enough to hold in memory.
 */
export async function readBlobData(reader: BlobReader): Promise<Buffer | undefined> {
  if (reader.data) return reader.data;
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of reader.stream) chunks.push(chunk as Buffer);
  } catch (err) {
    if ((err as { code?: string }).code === 'SPILLWAY_E_CAS_CORRUPT') return undefined;
    throw err;
  }
  return Buffer.concat(chunks);
}
