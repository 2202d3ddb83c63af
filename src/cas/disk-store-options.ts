import type { Clock, Logger } from '../lib';
import type { CommitFs, FsyncMode } from './blob-sync';

/** Options of {@link DiskStore.open}. */
export interface DiskStoreOptions {
  /** Directory owned by the store: `cas/ab/<hash>` blobs, `tmp/` uploads, `index.log`. */
  root: string;
  /** Hard limit on the bytes of stored blobs (plus uploads in flight). */
  maxBytes: number;
  /** Eviction stops once usage is at or below this. @defaultValue 0.8 × maxBytes */
  lowWatermark?: number;
  /** Eviction starts once usage exceeds this after a PUT. @defaultValue 0.9 × maxBytes */
  highWatermark?: number;
  /**
   * Blobs up to this size are hashed before their first byte is sent, so a corrupt one is a
   * plain miss; larger ones are verified while they stream and the response is aborted on a
   * mismatch (hashing first would delay their first byte by the whole read).
   * @defaultValue 64 MiB
   */
  verifyFirstMaxBytes?: number;
  /** When a stored blob is fsynced: before its PUT is answered, or in a group soon after (see {@link FsyncMode}). @defaultValue 'before-answer' */
  fsync?: FsyncMode;
  /** The rename and fsync calls of a commit, for tests that watch or fail them. @defaultValue the real ones */
  commitFs?: CommitFs;
  clock: Clock;
  log: Logger;
}

/** Counters for metrics and tests. */
export interface DiskStoreStats {
  entries: number;
  usedBytes: number;
  reservedBytes: number;
  maxBytes: number;
  hits: number;
  misses: number;
  evictions: number;
  evictedBytes: number;
  corruptionsDetected: number;
  /** Bytes of blobs newly stored by PUTs. */
  bytesStored: number;
  /** Bytes of blobs handed to readers (hits). */
  bytesServed: number;
}
