/** Where an agent runs: on the farm's own machines, or a cloud instance. */
export type Location = 'onprem' | 'cloud';

/**
 * How the free executors of one location are ordered for the next job.
 *
 * - `pack`: the busiest agent with a free executor first (most running builds), ties to the one
 *   used most recently. Work piles onto as few machines as possible, so the others go idle,
 *   reach their pool's quiet period and are suspended: for cloud instances, paid by the hour,
 *   that is the saving overflow exists for.
 * - `spread`: the least recently used agent with a free executor first. On-prem machines are
 *   paid for whether they build or not; spreading keeps their caches and disks evenly warm and
 *   worn, and a build does not queue behind a neighbour on a busy machine.
 *
 * Ties never go by name (that made the lexicographically first agent take half the farm's
 * builds): "recently used" is the agent's `usedSeq`, a counter the registry bumps whenever
 * the agent is given a build, frees an executor or comes (back) to work; a newly connected
 * agent counts as used when it connected.
 */
export type PlacementOrder = 'pack' | 'spread';

/** The order per location. On-prem always comes before cloud (the cloud exists only for overflow). */
export interface PlacementPolicy {
  readonly onprem: PlacementOrder;
  readonly cloud: PlacementOrder;
}

/** Cloud packed, on-prem spread: see {@link PlacementOrder}. */
export const DEFAULT_PLACEMENT: PlacementPolicy = Object.freeze({ onprem: 'spread', cloud: 'pack' });

/** What placement reads of an agent (a `ConnectedAgent` is one). */
export interface Placeable {
  readonly name: string;
  readonly location: Location;
  readonly executors: number;
  readonly usedSeq: number;
  readonly running: { readonly size: number };
}

/**
 * Negative when `a` should get the next job before `b` (both with a free executor, both able
 * to run it). A total order: `usedSeq` is unique per agent.
 */
export function comparePlacement(policy: PlacementPolicy, a: Placeable, b: Placeable): number {
  if (a.location !== b.location) return a.location === 'onprem' ? -1 : 1;
  if (policy[a.location] === 'pack') {
    if (a.running.size !== b.running.size) return b.running.size - a.running.size;
    return b.usedSeq - a.usedSeq;
  }
  return a.usedSeq - b.usedSeq;
}

/** The reason logged with a dispatch (`job.dispatched`): which rule chose this agent. */
export function placementReason(policy: PlacementPolicy, agent: Placeable): string {
  const where = agent.location === 'onprem' ? 'on-prem' : 'cloud';
  const order = policy[agent.location];
  return order === 'pack'
    ? `${where} agent ${agent.name}: packed, the busiest with a free executor (${agent.running.size}/${agent.executors} running)`
    : `${where} agent ${agent.name}: spread, the least recently used with a free executor (${agent.running.size}/${agent.executors} running)`;
}
