import type { Config, PoolConfig } from '../config';
import type { BootTimes } from './sim-provider';

/**
 * EC2 figures for a Linux instance from an EBS-backed AMI: a launch (pending, boot, the agent
 * starting and connecting over the VPN) takes about a minute and a half, a start of a stopped
 * instance skips provisioning, a resume from hibernation skips the boot as well.
 */
const EC2: BootTimes = { launchMs: 90_000, wakeMs: 60_000, resumeMs: 25_000 };
/** A local agent process connects about a second after it is spawned (or SIGCONTed). */
const LOCAL_AGENT_START_MS = 1000;

/** A pool's boot times: `simulation.pools.<name>`, else the provider's typical figures. */
export function bootTimes(config: Config, pool: string): BootTimes {
  const p: PoolConfig = config.pools[pool]!;
  const s = config.simulation.pools[pool] ?? {};
  const cold = (p.local?.bootDelayMs ?? 1000) + LOCAL_AGENT_START_MS;
  const d = p.provider === 'local' ? { launchMs: cold, wakeMs: cold, resumeMs: LOCAL_AGENT_START_MS } : EC2;
  return {
    launchMs: s.launchSec === undefined ? d.launchMs : s.launchSec * 1000,
    wakeMs: s.wakeSec === undefined ? d.wakeMs : s.wakeSec * 1000,
    resumeMs: s.resumeSec === undefined ? d.resumeMs : s.resumeSec * 1000,
  };
}

/** Suspended instances there are when the trace starts (as the local provider pre-creates them). */
export function preCreated(config: Config, pool: string): number {
  const p = config.pools[pool]!;
  return config.simulation.pools[pool]?.preCreated ?? (p.provider === 'local' ? (p.local?.preCreated ?? p.maxInstances) : 0);
}
