import { join } from 'node:path';
import { ActionCache, CacheConnectionRouter, CasAuth, CasHotPath, DiskStore, MemoryTier, RawHitPath, type BlobStore, type CasRoutesOptions } from '../cas';
import type { Config } from '../config';
import { runEvery, type Clock, type Logger } from '../lib';
import { CacheWorkers } from './cache-workers';

/** The master's CAS and action cache, with the options its HTTP routes are registered with. */
export interface CasService {
  routes: CasRoutesOptions;
  /** Hits of the memory tier answered before fastify; absent when the tier is off. */
  hotPath?: CasHotPath;
  /** Hits of the memory tier answered from the connection's bytes, before node:http; absent when the tier is off. */
  rawHits?: RawHitPath;
  /** The disk store under the tiers, for its stats. */
  disk: DiskStore;
  /** With `cas.workers`: hands cache connections of the master's HTTP server to the workers. */
  router?: CacheConnectionRouter;
  /** Starts the `cas.workers` processes (none without), once the master's HTTP listener is up. */
  startWorkers(master: { host: string; port: number }): Promise<void>;
  close(): Promise<void>;
}

/** Access times live in memory between snapshots; flushing this often bounds what a crash forgets. */
const FLUSH_MS = 60_000;

/** Opens the store when the config names a CAS dir; the index is flushed periodically. */
export async function openCas(config: Config, clock: Clock, log: Logger): Promise<CasService | undefined> {
  const c = config.cas;
  const dir = c.dir;
  if (!dir) return undefined;
  const casLog = log.child({ component: 'cas' });
  const disk = await DiskStore.open({ root: dir, maxBytes: c.maxSizeMb * 1024 * 1024, clock, log: casLog });
  const memory = c.memoryCacheMb > 0 ? new MemoryTier({ inner: disk, maxBytes: c.memoryCacheMb * 1024 * 1024, log: casLog }) : undefined;
  const store: BlobStore = memory ?? disk;
  const auth = { tokens: [...c.tokens], readTokens: [...c.readTokens], anonymous: c.anonymous };
  const actionCache = await ActionCache.open({ root: join(dir, 'action-cache'), store });
  let workers: CacheWorkers | undefined;
  const abort = new AbortController();
  const flusher = runEvery('cas-flush', FLUSH_MS, () => disk.flush(), { clock, signal: abort.signal, log: casLog, errorEvent: 'cas.flush-failed' });
  return {
    disk,
    ...(memory && { hotPath: new CasHotPath({ blobs: memory, auth: new CasAuth(auth), ...(c.prefix && { prefix: c.prefix }) }) }),
    ...(memory && c.rawHits && { rawHits: new RawHitPath({ blobs: memory, auth: new CasAuth(auth), clock, ...(c.prefix && { prefix: c.prefix }) }) }),
    routes: {
      store,
      actionCache,
      maxBlobBytes: c.maxBlobMb * 1024 * 1024,
      log: casLog,
      ...(c.prefix && { prefix: c.prefix }),
      auth,
    },
    ...(c.workers > 0 && { router: new CacheConnectionRouter({ ...(c.prefix && { prefix: c.prefix }), targets: () => workers?.targets() ?? [] }) }),
    startWorkers: async (master) => {
      if (c.workers === 0) return;
      workers = new CacheWorkers({
        count: c.workers,
        disk,
        clock,
        log: casLog,
        init: {
          storeRoot: dir,
          actionCacheRoot: join(dir, 'action-cache'),
          maxBlobBytes: c.maxBlobMb * 1024 * 1024,
          memoryCacheBytes: c.memoryCacheMb * 1024 * 1024,
          rawHits: c.rawHits,
          ...(c.prefix && { prefix: c.prefix }),
          auth,
          bodyLimitBytes: config.http.bodyLimitBytes,
          master,
        },
      });
      await workers.start();
    },
    close: async () => {
      await workers?.stop();
      abort.abort();
      await flusher;
      await disk.close();
    },
  };
}
