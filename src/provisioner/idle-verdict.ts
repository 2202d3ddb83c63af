import type { InstanceRecord } from './instance';

export interface IdleInput {
  instance: InstanceRecord;
  now: number;
  quietPeriodMs: number;
  /** Jobs waiting for any job type the pool serves. */
  backlog: number;
  /** Instances the warm minimum and open warm windows want awake. */
  warmWanted: number;
  /** Instances of the pool awake now (idle or busy), this one included. */
  awake: number;
  /** Builds its agent runs now (from the master it is connected to). */
  running: number;
}

export type Verdict = { act: boolean; reason: string };

/** Minutes, or seconds for the short quiet periods of demos and tests. */
const min = (ms: number) => (ms < 120_000 ? `${Math.round(ms / 1000)}s` : `${Math.round(ms / 60_000)}m`);

/** Whether an instance should be drained and suspended now, and why (or why not). */
export function idleVerdict(i: IdleInput): Verdict {
  const r = i.instance;
  if (r.state !== 'idle') return { act: false, reason: `${r.state}, not idle` };
  if (i.running > 0) return { act: false, reason: `busy: ${i.running} build(s) running` };
  if (i.backlog > 0) return { act: false, reason: `backlog of ${i.backlog} for the pool's job types` };
  const idleSince = Math.max(r.lastJobEndedAt ?? 0, r.since);
  const idleMs = i.now - idleSince;
  if (idleMs < i.quietPeriodMs) return { act: false, reason: `idle ${min(idleMs)} < quiet period ${min(i.quietPeriodMs)}` };
  if (i.awake <= i.warmWanted) return { act: false, reason: `kept warm: ${i.warmWanted} wanted awake` };
  return { act: true, reason: `idle ${min(idleMs)} >= quiet period ${min(i.quietPeriodMs)}, no backlog` };
}

/** Whether a starting instance has overrun its boot timeout (its agent never registered). */
export function bootVerdict(r: InstanceRecord, now: number, bootTimeoutMs: number): Verdict {
  if (r.state !== 'waking' && r.state !== 'booting' && r.state !== 'launching') return { act: false, reason: `${r.state}, not starting` };
  const ms = now - r.since;
  return ms > bootTimeoutMs
    ? { act: true, reason: `no agent registered ${Math.round(ms / 1000)}s after ${r.state} (boot timeout ${Math.round(bootTimeoutMs / 1000)}s)` }
    : { act: false, reason: `${r.state} for ${Math.round(ms / 1000)}s` };
}
