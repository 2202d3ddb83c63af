import type { Requirements } from '../protocol';
import { freeExecutors, takesWork, type ConnectedAgent } from './agent-registry';
import { comparePlacement, DEFAULT_PLACEMENT, placementReason, type PlacementPolicy } from './placement-policy';

export type Choice = { agent: ConnectedAgent; reason: string } | { agent: undefined; reason: string };

/** Why this agent can never run a job with these requirements, or undefined if it can. */
function unmetRequirement(agent: ConnectedAgent, req: Requirements | undefined): string | undefined {
  if (!req) return undefined;
  if (req.os !== undefined && req.os !== agent.os) return `os ${agent.os} != ${req.os}`;
  if (req.arch !== undefined && req.arch !== agent.arch) return `arch ${agent.arch} != ${req.arch}`;
  if (req.pool !== undefined && req.pool !== agent.pool) return `pool ${agent.pool ?? '(none)'} != ${req.pool}`;
  if (req.cpus !== undefined && agent.cpus < req.cpus) return `cpus ${agent.cpus} < ${req.cpus}`;
  if (req.memoryMb !== undefined && agent.memoryMb < req.memoryMb) return `memory ${agent.memoryMb} MiB < ${req.memoryMb} MiB`;
  const missing = (req.labels ?? []).filter((l) => !agent.labels.has(l));
  if (missing.length) return `missing labels ${missing.join(',')}`;
  return undefined;
}

/**
 * Which agent gets a job of `queue` now: one that serves the type, is not draining, has a free
 * executor and meets the requirements; among those the first by the placement policy
 * (`comparePlacement`: on-prem before cloud, on-prem spread, cloud packed by default). This is
 * the definition, a scan of every agent; the dispatcher gets the same answer from the
 * registry's index through `firstFitting`.
 */
export function chooseAgent(queue: string, req: Requirements | undefined, agents: Iterable<ConnectedAgent>, policy: PlacementPolicy = DEFAULT_PLACEMENT): Choice {
  let best: ConnectedAgent | undefined;
  let serving = 0;
  let busy = 0;
  const unmet: string[] = [];
  for (const a of agents) {
    if (!a.jobTypes.has(queue)) continue;
    serving++;
    if (freeExecutors(a) <= 0) {
      busy++;
      continue;
    }
    const why = unmetRequirement(a, req);
    if (why) {
      unmet.push(`${a.name}: ${why}`);
      continue;
    }
    if (!best || comparePlacement(policy, a, best) < 0) best = a;
  }
  if (best) return { agent: best, reason: placementReason(policy, best) };
  if (serving === 0) return { agent: undefined, reason: `no connected agent serves job type ${queue}` };
  if (unmet.length === 0) return { agent: undefined, reason: `all ${busy} agent(s) serving ${queue} are busy, draining or short of disk` };
  return { agent: undefined, reason: `no free agent meets the requirements (${unmet.join('; ')})` };
}

/**
 * The first of `candidates` (agents with a free executor, best first: `AgentRegistry.candidates`)
 * that meets the requirements and is not `not`. O(1) for a job without requirements; a job
 * with requirements skips the agents that do not meet them.
 */
export function firstFitting(candidates: Iterable<ConnectedAgent>, req: Requirements | undefined, policy: PlacementPolicy, not?: ConnectedAgent): Choice {
  for (const a of candidates) {
    if (a === not || unmetRequirement(a, req) !== undefined) continue;
    return { agent: a, reason: placementReason(policy, a) };
  }
  return { agent: undefined, reason: 'no free agent meets the requirements' };
}

/**
 * Why no agent connected here could ever run a job of `queue` with these requirements, busy or
 * not, or undefined if one could (or none serves the type at all: that is backlog, and the
 * autoscaler's to answer). Draining agents and agents short of disk take no new work, so they do not count.
 */
export function whyUnrunnable(queue: string, req: Requirements | undefined, agents: Iterable<ConnectedAgent>): string | undefined {
  const serving = [...agents].filter((a) => a.jobTypes.has(queue) && takesWork(a));
  if (serving.length === 0 || serving.some((a) => unmetRequirement(a, req) === undefined)) return undefined;
  const r = req ?? {};
  const missing = (r.labels ?? []).filter((l) => !serving.some((a) => a.labels.has(l)));
  if (missing.length) return `no agent offers label${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`;
  if (r.os !== undefined && !serving.some((a) => a.os === r.os)) return `no agent runs os ${r.os}`;
  if (r.arch !== undefined && !serving.some((a) => a.arch === r.arch)) return `no agent has arch ${r.arch}`;
  if (r.pool !== undefined && !serving.some((a) => a.pool === r.pool)) return `no agent of pool ${r.pool} is connected`;
  if (r.cpus !== undefined && !serving.some((a) => a.cpus >= r.cpus!)) return `no agent has ${r.cpus} cpus (most: ${Math.max(...serving.map((a) => a.cpus))})`;
  if (r.memoryMb !== undefined && !serving.some((a) => a.memoryMb >= r.memoryMb!)) {
    return `no agent has ${r.memoryMb} MiB of memory (most: ${Math.max(...serving.map((a) => a.memoryMb))} MiB)`;
  }
  return `no agent meets all the requirements (${serving.map((a) => `${a.name}: ${unmetRequirement(a, req)}`).join('; ')})`;
}
