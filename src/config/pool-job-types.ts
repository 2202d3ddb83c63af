import type { Config } from './schema';

/** The job types a pool's agents serve: the pool's list, else the types that overflow into it. */
export function poolJobTypes(config: Config, pool: string): string[] {
  const listed = config.pools[pool]?.jobTypes;
  if (listed?.length) return [...listed];
  return Object.entries(config.jobTypes)
    .filter(([, t]) => t.overflow?.pool === pool)
    .map(([type]) => type);
}
