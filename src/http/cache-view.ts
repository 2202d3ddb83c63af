import type { MetricsSources } from './metrics';

/** The build cache on the dashboard: reads by the tier that answered them, since this master started. */
export interface CacheOverview {
  reads: { memory: number | null; disk: number; s3: number | null; missed: number };
  actionCache: { hits: number; misses: number };
  disk: { usedBytes: number; maxBytes: number };
  /** With `cas.s3`: how far the bucket lags behind this master, and what S3 refused. */
  s3: { queued: number; oldestAgeMs: number; dropped: number; corruptObjects: number; errors: Record<string, number> } | null;
}

/**
 * The same figures as the `spillway_cas_*` metrics, read from the same stats. The disk store
 * counts every read served (a memory hit touches it, to keep the blob recent), so its own share
 * is what is left after the memory tier's; with an S3 tier, the tier counts the local reads.
 */
export function cacheView(cas: NonNullable<MetricsSources['cas']>): CacheOverview {
  const disk = cas.store.stats();
  const memory = cas.memory?.stats();
  const s3 = cas.s3?.stats();
  return {
    reads: {
      memory: memory ? memory.hits : null,
      disk: s3 ? s3.localHits : disk.hits - (memory?.hits ?? 0),
      s3: s3 ? s3.s3Hits : null,
      missed: s3 ? s3.misses : disk.misses,
    },
    actionCache: cas.actionCache.stats(),
    disk: { usedBytes: disk.usedBytes, maxBytes: disk.maxBytes },
    s3: s3 ? { queued: s3.uploads.depth, oldestAgeMs: s3.uploads.oldestAgeMs, dropped: s3.uploads.dropped, corruptObjects: s3.corruptObjects, errors: s3.errors } : null,
  };
}
