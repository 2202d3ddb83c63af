/** Queue waits of one job type at one location. */
export interface WaitStats {
  builds: number;
  p50Ms: number | null;
  p95Ms: number | null;
  maxMs: number | null;
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: ArrayLike<number>, p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

export function waitStats(values: number[]): WaitStats {
  const sorted = Float64Array.from(values).sort();
  return { builds: sorted.length, p50Ms: percentile(sorted, 50), p95Ms: percentile(sorted, 95), maxMs: sorted.length ? sorted[sorted.length - 1]! : null };
}

export interface TypeResult {
  type: string;
  jobs: number;
  onprem: WaitStats;
  cloud: WaitStats;
  /** Builds that ran on a cloud instance. */
  overflowed: number;
  /** Jobs still waiting when the simulation ended (no agent could ever run them). */
  neverRan: number;
}

export interface PoolResult {
  pool: string;
  /** Instance-hours with a machine up (launching to suspending): what EC2 bills for compute. */
  runningHours: number;
  suspendedHours: number;
  wakes: number;
  launches: number;
  /** runningHours at the pool's price (spot price for a spot pool); null without `price`. */
  cost: number | null;
}

/** A point of the chart: jobs waiting and instances up per pool, at a moment. */
export interface Sample {
  at: number;
  backlog: number;
  awake: Record<string, number>;
}

export interface SimulationResult {
  policy: string;
  spec: string;
  startedAt: number;
  endedAt: number;
  types: TypeResult[];
  pools: PoolResult[];
  /** Every build's wait, all types and locations. */
  all: WaitStats;
  cost: number | null;
  samples: Sample[];
  /** Scheduling steps run (each one: place jobs, run every pool's scaler). */
  steps: number;
}
