import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { Config } from '../config';
import type { Clock, Logger } from '../lib';
import { poolJobTypes, type PeerIssuer } from '../provisioner';
import { LaunchPeers, runHubCommand, type HubCommandRunner } from '../vpn';
import { userDataTemplate } from './vpn-command';

/**
 * The peer issuer of every pool with a `vpn` section, made once per pool. The template is read
 * here, at start: a missing file stops the master rather than failing each launch.
 */
export function vpnPeerIssuers(o: { config: Config; redis: Redis; clock: Clock; log: Logger; run?: HubCommandRunner }): (pool: string) => PeerIssuer | undefined {
  const made = new Map<string, LaunchPeers>();
  for (const [pool, p] of Object.entries(o.config.pools)) {
    if (!p.vpn) continue;
    made.set(
      pool,
      new LaunchPeers({
        pool,
        vpn: p.vpn,
        // The shipped template (the one `spillway vpn init` renders too) carries the agent unit on-prem agents run.
        userDataTemplate: p.vpn.userDataTemplate ? readFileSync(p.vpn.userDataTemplate, 'utf8') : userDataTemplate(),
        agentToken: p.agentTokens[0] ?? o.config.agents.token,
        jobTypes: poolJobTypes(o.config, pool),
        executors: p.executorsPerInstance,
        redis: o.redis,
        keyPrefix: o.config.redis.keyPrefix,
        run: o.run ?? runHubCommand,
        clock: o.clock,
        log: o.log,
      }),
    );
  }
  return (pool) => made.get(pool);
}
