import type { ActionCache, BlobStore } from '../cas';
import type { Logger } from '../lib';
import type { CallAuth } from './call-auth';
import type { CompleteResults } from './complete-results';

/** Dependencies of the cache services (CAS, ByteStream, ActionCache). */
export interface CacheServiceDeps {
  /** The store the HTTP cache serves: one blob, one place, whichever protocol wrote it. */
  store: BlobStore;
  actionCache: ActionCache;
  auth: CallAuth;
  /** GetActionResult's completeness checks, remembered; shared with Execute's cache lookup. */
  completeResults: CompleteResults;
  /** Largest sum of blob sizes in one batch call. */
  maxBatchBytes: number;
  /** Largest single blob (cas.maxBlobMb). */
  maxBlobBytes: number;
  log: Logger;
}
