import { checkSymlinkTarget, DEFAULT_MATERIALIZE_LIMITS, EMPTY_DIGEST, decodeReapiDirectory, InvalidTreeError, type BlobStore, type Digest } from '../cas';
import { readBlob } from './blob-read';

/** Bounds on the input tree checked before a job is submitted (the agent enforces its own too). */
export interface InputCheckLimits {
  /** @defaultValue 256 */
  maxDepth?: number;
  /** Distinct directories plus their entries. @defaultValue 1,000,000 */
  maxEntries?: number;
}

/**
 * The blobs of the input tree `root` that the CAS lacks: directories first (a missing one
 * hides its subtree), then every file, in one FindMissing. Each distinct directory is read
 * once; its names and symlinks go through the same checks the agent applies, so a hostile
 * tree is refused here, before it costs an agent anything.
 * @throws InvalidTreeError for a malformed or hostile directory, or a tree over the limits
 */
export async function missingInputs(store: BlobStore, root: Digest, limits: InputCheckLimits = {}): Promise<Digest[]> {
  const maxDepth = limits.maxDepth ?? DEFAULT_MATERIALIZE_LIMITS.maxDepth;
  const maxEntries = limits.maxEntries ?? DEFAULT_MATERIALIZE_LIMITS.maxEntries;
  const missing: Digest[] = [];
  const files = new Map<string, Digest>();
  const seen = new Set<string>();
  let entries = 0;
  let level: Digest[] = [root];
  for (let depth = 0; level.length > 0; depth++) {
    if (depth > maxDepth) throw new InvalidTreeError(`input tree is deeper than ${maxDepth} directories`);
    const next: Digest[] = [];
    // The store never holds the empty blob, and an empty Directory is exactly that.
    const blobs = await Promise.all(level.map(async (d) => [d, d.size === 0 && d.hash === EMPTY_DIGEST.hash ? Buffer.alloc(0) : await readBlob(store, d)] as const));
    for (const [d, blob] of blobs) {
      if (!blob) {
        missing.push(d);
        continue;
      }
      const node = decodeReapiDirectory(blob);
      // Breadth first, so a node shared by several places is checked at its shallowest, the strictest.
      for (const l of node.symlinks) checkSymlinkTarget(l.target, depth, l.name);
      entries += 1 + node.files.length + node.directories.length + node.symlinks.length;
      if (entries > maxEntries) throw new InvalidTreeError(`input tree has more than ${maxEntries} entries`);
      for (const f of node.files) if (f.digest.size > 0) files.set(`${f.digest.hash}/${f.digest.size}`, f.digest);
      for (const sub of node.directories) {
        const key = `${sub.digest.hash}/${sub.digest.size}`;
        if (seen.has(key)) continue;
        seen.add(key);
        next.push(sub.digest);
      }
    }
    level = next;
  }
  if (files.size > 0) missing.push(...(await store.findMissing([...files.values()])));
  return missing;
}
