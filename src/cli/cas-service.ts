import { join } from 'node:path';
import {
  ActionCache,
  CacheConnectionRouter,
  CasAuth,
  CasHotPath,
  createS3Client,
  DiskStore,
  MemoryTier,
  RawHitPath,
  S3Objects,
  S3Tier,
  UploadJournal,
  type BlobStore,
  type CasRoutesOptions,
  type CreateS3ClientOptions,
  type S3ClientHandle,
} from '../cas';
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
  /** The memory tier in front of everything, for its stats; absent when it is off. */
  memory?: MemoryTier;
  /** The S3 tier behind the disk (`cas.s3`), for its stats; absent without it. */
  s3?: S3Tier;
  /** With `cas.workers`: hands cache connections of the master's HTTP server to the workers. */
  router?: CacheConnectionRouter;
  /** Starts the `cas.workers` processes (none without), once the master's HTTP listener is up. */
  startWorkers(master: { host: string; port: number }): Promise<void>;
  close(): Promise<void>;
}

/** Access times live in memory between snapshots; flushing this often bounds what a crash forgets. */
const FLUSH_MS = 60_000;

/** How long S3 is believed to hold a blob it was seen to hold (FindMissing asks no HEAD meanwhile). */
const S3_KNOWN_TTL_MS = 10 * 60_000;

/** Opens the store when the config names a CAS dir; the index is flushed periodically. */
export async function openCas(
  config: Config,
  clock: Clock,
  log: Logger,
  /** @defaultValue createS3Client (the SDK's default credential chain) */
  s3Client: (o: CreateS3ClientOptions) => S3ClientHandle = createS3Client,
): Promise<CasService | undefined> {
  const c = config.cas;
  const dir = c.dir;
  if (!dir) return undefined;
  const casLog = log.child({ component: 'cas' });
  const disk = await DiskStore.open({ root: dir, maxBytes: c.maxSizeMb * 1024 * 1024, fsync: c.fsync, clock, log: casLog });
  const client = c.s3 && s3Client({ region: c.s3.region, endpoint: c.s3.endpoint, forcePathStyle: c.s3.forcePathStyle });
  const s3 = c.s3 && client && (await openS3Tier(c.s3, dir, disk, client, clock, casLog, c.maxBlobMb * 1024 * 1024));
  const local: BlobStore = s3 ?? disk;
  const memory = c.memoryCacheMb > 0 ? new MemoryTier({ inner: local, maxBytes: c.memoryCacheMb * 1024 * 1024, log: casLog }) : undefined;
  const store: BlobStore = memory ?? local;
  const auth = { tokens: [...c.tokens], readTokens: [...c.readTokens], anonymous: c.anonymous };
  const actionCache = await ActionCache.open({ root: join(dir, 'action-cache'), store, ...(s3 && { mirror: s3.actionEntries() }) });
  await s3?.start();
  let workers: CacheWorkers | undefined;
  const abort = new AbortController();
  const flusher = runEvery('cas-flush', FLUSH_MS, () => disk.flush(), { clock, signal: abort.signal, log: casLog, errorEvent: 'cas.flush-failed' });
  return {
    disk,
    ...(memory && { memory }),
    ...(s3 && { s3 }),
    ...(memory && { hotPath: new CasHotPath({ blobs: memory, auth: new CasAuth(auth), ...(c.prefix && { prefix: c.prefix }) }) }),
    ...(memory && c.rawHits && { rawHits: new RawHitPath({ blobs: memory, actionValues: actionCache, auth: new CasAuth(auth), clock, ...(c.prefix && { prefix: c.prefix }) }) }),
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
      await s3?.stop();
      client?.destroy();
      await flusher;
      await disk.close();
    },
  };
}

async function openS3Tier(
  s3: NonNullable<Config['cas']['s3']>,
  dir: string,
  disk: DiskStore,
  client: S3ClientHandle,
  clock: Clock,
  log: Logger,
  maxEntryBytes: number,
): Promise<S3Tier> {
  return new S3Tier({
    inner: disk,
    objects: new S3Objects(client, s3.bucket),
    journal: await UploadJournal.open(join(dir, 's3-journal')),
    prefix: s3.prefix,
    uploads: { maxQueued: s3.maxQueued, concurrency: s3.uploadConcurrency, backoff: { baseMs: 500, maxMs: 30_000 } },
    timeoutMs: s3.timeoutMs,
    known: { maxEntries: 100_000, ttlMs: S3_KNOWN_TTL_MS },
    maxEntryBytes,
    clock,
    log: log.child({ tier: 's3' }),
  });
}
