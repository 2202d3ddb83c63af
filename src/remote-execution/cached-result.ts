import type { ActionCache, BlobStore, Digest } from '../cas';
import { readBlob } from './blob-read';
import { reapiProtos } from './reapi-protos';
import type { ActionResult, ActionResult__Output } from './reapi-types';

/** Trees larger than this are not opened for the completeness check (the result is then a miss). */
const MAX_TREE_BYTES = 64 * 1024 * 1024;

/**
 * The action cache's REAPI result for `action` when every blob it names is still in the CAS
 * (outputs, stdout/stderr, output directories' Trees and their files), else undefined: Execute
 * then runs the action instead of answering with a result the client cannot download.
 */
export async function cachedResult(store: BlobStore, actionCache: ActionCache, action: Digest): Promise<ActionResult | undefined> {
  const reader = await actionCache.getRaw(action.hash);
  if (!reader) return undefined;
  reader.stream.destroy();
  const bytes = await readBlob(store, reader.digest);
  if (!bytes) return undefined;
  let result: ActionResult__Output;
  try {
    result = reapiProtos().actionResult.decode(bytes);
  } catch {
    return undefined; // an opaque value another client stored under /ac/
  }
  const needed: Digest[] = [];
  const add = (d: { hash: string; sizeBytes: number } | null | undefined): void => {
    if (d && d.hash !== '' && d.sizeBytes > 0) needed.push({ hash: d.hash, size: d.sizeBytes });
  };
  result.outputFiles.forEach((f) => add(f.digest));
  add(result.stdoutDigest);
  add(result.stderrDigest);
  for (const dir of result.outputDirectories) {
    if (!dir.treeDigest) continue;
    const tree = { hash: dir.treeDigest.hash, size: dir.treeDigest.sizeBytes };
    if (tree.size > MAX_TREE_BYTES) return undefined;
    const treeBytes = await readBlob(store, tree);
    if (!treeBytes) return undefined;
    try {
      const t = reapiProtos().tree.decode(treeBytes);
      for (const d of [t.root, ...t.children]) d?.files.forEach((f) => add(f.digest));
    } catch {
      return undefined;
    }
  }
  if ((await store.findMissing(needed)).length > 0) return undefined;
  return result as ActionResult;
}
