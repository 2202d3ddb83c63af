import { join } from 'node:path';
import { ActionCache, CasAuth, CasHotPath, DiskStore, MemoryTier, type BlobStore, type CasRoutesOptions } from '../cas';
import type { Config } from '../config';
import { runEvery, type Clock, type Logger } from '../lib';

/** The master's CAS and action cache, with the options its HTTP routes are registered with. */
export interface CasService {
  routes: CasRoutesOptions;
  /** Hits of the memory tier answered before fastify; absent when the tier is off. */
  hotPath?: CasHotPath;
  /** The disk store under the tiers, for its stats. */
  disk: DiskStore;
  close(): Promise<void>;
}

/** Access times live in memory between snapshots; flushing this often bounds what a crash forgets. */
const FLUSH_MS = 60_000;

/** Opens the store when the config names a CAS dir; the index is flushed periodically. */
export async function openCas(config: Config, clock: Clock, log: Logger): Promise<CasService | undefined> {
  const c = config.cas;
  if (!c.dir) return undefined;
  const casLog = log.child({ component: 'cas' });
  const disk = await DiskStore.open({ root: c.dir, maxBytes: c.maxSizeMb * 1024 * 1024, clock, log: casLog });
  const memory = c.memoryCacheMb > 0 ? new MemoryTier({ inner: disk, maxBytes: c.memoryCacheMb * 1024 * 1024, log: casLog }) : undefined;
  const store: BlobStore = memory ?? disk;
  const auth = { tokens: [...c.tokens], readTokens: [...c.readTokens], anonymous: c.anonymous };
  const actionCache = await ActionCache.open({ root: join(c.dir, 'action-cache'), store });
  const abort = new AbortController();
  const flusher = runEvery('cas-flush', FLUSH_MS, () => disk.flush(), { clock, signal: abort.signal, log: casLog, errorEvent: 'cas.flush-failed' });
  return {
    disk,
    ...(memory && { hotPath: new CasHotPath({ blobs: memory, auth: new CasAuth(auth), ...(c.prefix && { prefix: c.prefix }) }) }),
    routes: {
      store,
      actionCache,
      maxBlobBytes: c.maxBlobMb * 1024 * 1024,
      log: casLog,
      ...(c.prefix && { prefix: c.prefix }),
      auth,
    },
    close: async () => {
      abort.abort();
      await flusher;
      await disk.close();
    },
  };
}
