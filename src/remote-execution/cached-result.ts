import type { ActionCache, BlobStore, Digest } from '../cas';
import { readBlobData } from '../cas';
import type { CompleteResults } from './complete-results';
import { reapiProtos } from './reapi-protos';
import type { ActionResult, ActionResult__Output } from './reapi-types';

/**
 * The action cache's REAPI result for `action` when every blob it names is still in the CAS
 * (the check GetActionResult applies, remembered in `complete`), else undefined: Execute then
 * runs the action instead of answering with a result the client cannot download.
 */
export async function cachedResult(store: BlobStore, actionCache: ActionCache, complete: CompleteResults, action: Digest): Promise<ActionResult | undefined> {
  const reader = await actionCache.getRaw(action.hash);
  if (!reader) return undefined;
  const bytes = await readBlobData(reader);
  if (!bytes) return undefined;
  let result: ActionResult__Output;
  try {
    result = reapiProtos().actionResult.decode(bytes);
  } catch {
    return undefined; // an opaque value another client stored under /ac/
  }
  if (!(await complete.check(store, reader.digest.hash, result))) return undefined;
  return result as ActionResult;
}
