import type { ActionCache, BlobStore } from '../cas';
import type { Logger } from '../lib';
import type { CallAuth } from './call-auth';

/** Dependencies of the cache services (CAS, ByteStream, ActionCache). */
export interface CacheServiceDeps {
  /** The store the HTTP cache serves: one blob, one place, whichever protocol wrote it. */
  store: BlobStore;
  actionCache: ActionCache;
  auth: CallAuth;
  /** Largest sum of blob sizes in one batch call. */
  maxBatchBytes: number;
  /** Largest single blob (cas.maxBlobMb). */
  maxBlobBytes: number;
  log: Logger;
}
