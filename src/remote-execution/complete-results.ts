import type { BlobStore, Digest } from '../cas';
import type { Clock } from '../lib';
import { readBlob } from './blob-read';
import { reapiProtos } from './reapi-protos';
import type { ActionResult__Output, Digest__Output } from './reapi-types';

/** Output directories whose Tree is larger than this are not opened (the result is then incomplete). */
const MAX_TREE_BYTES = 64 * 1024 * 1024;
/** @defaultValue of {@link CompleteResultsOptions.maxEntries} */
const DEFAULT_MAX_ENTRIES = 10_000;
/** @defaultValue of {@link CompleteResultsOptions.recheckMs} */
const DEFAULT_RECHECK_MS = 60_000;
/** Results naming more blobs are checked every time: remembering them would cost more memory than the check costs time. */
const MAX_BLOBS_PER_ENTRY = 1_000;

/** Options of {@link CompleteResults}. */
export interface CompleteResultsOptions {
  clock: Clock;
  /** Results remembered at most (the oldest checked go first). @defaultValue 10000 */
  maxEntries?: number;
  /**
   * A remembered result is checked again after this long, for what the store cannot report: a
   * file deleted behind its back, a blob an S3 tier lost; the re-check also keeps the result's
   * blobs recent in the store's LRU order. @defaultValue 60000
   */
  recheckMs?: number;
}

interface Entry {
  checkedAt: number;
  blobs: readonly string[];
}

/**
 * The completeness check of action results (every blob a result names is still in the CAS:
 * output files, stdout/stderr, output directories' Trees and every file in them), remembered
 * per stored result blob. A fully cached build asks for the same results again and again, and
 * the check costs a stat per blob (plus reading each Tree); a remembered result costs a map
 * lookup.
 *
 * The memo never outlives what it rests on: {@link removed} (wired to the disk store's
 * removal hook: deletion, eviction, corruption, a vanished file) drops every result naming
 * the blob, and a check that overlapped any removal is not remembered, since the blob it saw
 * may be the one that left.
 */
export class CompleteResults {
  /** Result blob hash -> what it was checked against; oldest checked first. */
  private readonly entries = new Map<string, Entry>();
  /** Blob hash -> the remembered results naming it. */
  private readonly byBlob = new Map<string, Set<string>>();
  private readonly maxEntries: number;
  private readonly recheckMs: number;
  /** Counts removals, so a check can tell whether one happened while it ran. */
  private removals = 0;

  constructor(private readonly opts: CompleteResultsOptions) {
    this.maxEntries = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.recheckMs = opts.recheckMs ?? DEFAULT_RECHECK_MS;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Whether the result stored as blob `resultHash` was found complete recently and nothing it names has left since. */
  known(resultHash: string): boolean {
    const e = this.entries.get(resultHash);
    if (!e) return false;
    if (this.opts.clock.now() - e.checkedAt < this.recheckMs) return true;
    this.forget(resultHash);
    return false;
  }

  /**
   * Whether every blob `result` (stored as blob `resultHash`) names is in `store`; a complete
   * result is remembered unless a blob left the store while this ran.
   */
  async check(store: BlobStore, resultHash: string, result: ActionResult__Output): Promise<boolean> {
    if (this.known(resultHash)) return true;
    const before = this.removals;
    const needed = await referencedBlobs(store, result);
    if (needed === undefined || (await store.findMissing(needed)).length > 0) return false;
    if (this.removals === before) this.remember(resultHash, needed);
    return true;
  }

  /** A blob left the store: every result naming it (or stored as it) must be checked again. */
  removed(hash: string): void {
    this.removals++;
    this.forget(hash);
    const results = this.byBlob.get(hash);
    if (!results) return;
    for (const r of [...results]) this.forget(r);
  }

  private remember(resultHash: string, needed: readonly Digest[]): void {
    this.forget(resultHash);
    if (needed.length > MAX_BLOBS_PER_ENTRY || this.maxEntries <= 0) return;
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.forget(oldest);
    }
    const blobs = [...new Set(needed.map((d) => d.hash))];
    this.entries.set(resultHash, { checkedAt: this.opts.clock.now(), blobs });
    for (const b of blobs) {
      let set = this.byBlob.get(b);
      if (!set) this.byBlob.set(b, (set = new Set()));
      set.add(resultHash);
    }
  }

  private forget(resultHash: string): void {
    const e = this.entries.get(resultHash);
    if (!e) return;
    this.entries.delete(resultHash);
    for (const b of e.blobs) {
      const set = this.byBlob.get(b);
      set?.delete(resultHash);
      if (set?.size === 0) this.byBlob.delete(b);
    }
  }
}

/** The blobs a result needs (its Trees included), or undefined when one of its Trees is missing, too large or unreadable. */
async function referencedBlobs(store: BlobStore, r: ActionResult__Output): Promise<Digest[] | undefined> {
  const out: Digest[] = [];
  const add = (d: Digest__Output | null): void => {
    if (d && d.hash !== '') out.push({ hash: d.hash, size: d.sizeBytes });
  };
  r.outputFiles.forEach((f) => add(f.digest));
  add(r.stdoutDigest);
  add(r.stderrDigest);
  for (const dir of r.outputDirectories) {
    if (!dir.treeDigest) continue;
    const tree = { hash: dir.treeDigest.hash, size: dir.treeDigest.sizeBytes };
    if (tree.size > MAX_TREE_BYTES) return undefined;
    const bytes = await readBlob(store, tree);
    if (!bytes) return undefined;
    out.push(tree);
    try {
      const t = reapiProtos().tree.decode(bytes);
      for (const d of [t.root, ...t.children]) d?.files.forEach((f) => add(f.digest));
    } catch {
      return undefined;
    }
  }
  return out;
}
