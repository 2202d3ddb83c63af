/** Where the master serves the cache, for telling a lost client where to go. */
export interface CacheMount {
  /** False when `cas.dir` is unset: no cache routes at all. */
  enabled: boolean;
  /** The configured `cas.prefix`, '' for the root. */
  prefix: string;
}

const CACHE_SEGMENT = /(^|\/)(cas|ac)(\/|$)/;

/**
 * A hint for a request that matched no route, when its path looks like a cache URL (a `cas` or
 * `ac` segment, or under `/cache`); undefined for every other 404. A client pointed at the
 * wrong prefix otherwise sees only misses, which Bazel and ccache take as "build it locally".
 */
export function cacheRouteHint(path: string, mount: CacheMount): string | undefined {
  const p = path.split('?')[0]!;
  if (!CACHE_SEGMENT.test(p) && !/^\/cache(\/|$)/.test(p)) return undefined;
  if (!mount.enabled) return 'no build cache here: cas.dir is not set in the master config';
  return `no cache route at this path; the cache is served at ${mount.prefix}/cas/<sha256> and ${mount.prefix}/ac/<sha256> (cas.prefix ${mount.prefix === '' ? 'unset' : `"${mount.prefix}"`})`;
}
