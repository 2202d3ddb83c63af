import type { spawn } from 'node:child_process';
import type { Config, PoolConfig } from '../config';
import type { Clock, Logger } from '../lib';
import type { AwsErrorObserver } from './aws-errors';
import type { Ec2Client } from './ec2-api';
import type { AwsRetryObserver } from './ec2-errors';
import type { Ec2RequestBucket } from './ec2-request-bucket';
import type { PeerIssuer } from './peer-issuer';
import { Ec2Provider } from './ec2-provider';
import { LocalProvider, type LocalAgentCas } from './local-provider';
import type { Provider } from './provider';
import { poolJobTypes } from './provisioner';

/** What the composition root hands every provider factory. */
export interface ProviderEnv {
  clock: Clock;
  log: Logger;
  /** How to run `spillway` (e.g. [node, cli/main.js]): local pools start their agents with it. */
  agentCommand: readonly string[];
  /** The master's agent listener, known once it listens. */
  masterUrl: () => string;
  /** The EC2 client of a region and endpoint; the same one for every pool there. */
  ec2Client(region: string, endpoint: string | undefined): Ec2Client;
  /** The master's HTTP cache, for local pools' agents (see LocalProviderOptions.cas). */
  cas?: () => LocalAgentCas | undefined;
  /** Starts local pools' agent processes. @defaultValue child_process.spawn */
  spawn?: typeof spawn;
  /** A VPN pool's peer issuer (pools with a `vpn` section); absent: launches use the template's user-data. */
  peers?(pool: string): PeerIssuer | undefined;
  /** Told of every failed AWS request. */
  onAwsError?: AwsErrorObserver;
  /** Told of every retry of an EC2 request. */
  onAwsRetry?: AwsRetryObserver;
  /** The mutating-request bucket of a region (one per account+region, shared by its pools). */
  ec2Bucket?(region: string): Ec2RequestBucket;
}

/** Makes one pool's provider. Must not fail or do I/O: checks belong in `setup()`, which is retried. */
export type ProviderFactory = (pool: string, config: Config, env: ProviderEnv) => Provider;

/** The provider kinds a pool's `provider` may name, as taskcluster keeps its provider type table. */
export const PROVIDERS: Readonly<Record<PoolConfig['provider'], ProviderFactory>> = Object.freeze({
  local: (pool, config, env) => {
    const p = config.pools[pool]!;
    return new LocalProvider({
      pool,
      config: p,
      jobTypes: poolJobTypes(config, pool),
      agentCommand: env.agentCommand,
      masterUrl: env.masterUrl,
      // The pool's own (newest) token when it has one: its agents then get only the pool's rights.
      token: p.agentTokens[0] ?? config.agents.token,
      ...(env.cas && { cas: env.cas }),
      clock: env.clock,
      log: env.log,
      ...(env.spawn && { spawn: env.spawn }),
    });
  },
  ec2: (pool, config, env) => {
    // The config schema requires `ec2` for provider "ec2".
    const ec2 = config.pools[pool]!.ec2!;
    const peers = env.peers?.(pool);
    return new Ec2Provider({
      pool,
      config: ec2,
      client: env.ec2Client(ec2.region, ec2.endpoint),
      clock: env.clock,
      log: env.log,
      ...(peers && { peers }),
      ...(env.onAwsError && { onAwsError: env.onAwsError }),
      ...(env.onAwsRetry && { onAwsRetry: env.onAwsRetry }),
      ...(env.ec2Bucket && { bucket: env.ec2Bucket(ec2.region) }),
    });
  },
});

/** Every configured pool's provider, by pool name. */
export function createProviders(config: Config, env: ProviderEnv, registry: Readonly<Record<string, ProviderFactory>> = PROVIDERS): Map<string, Provider> {
  const out = new Map<string, Provider>();
  for (const [name, pool] of Object.entries(config.pools)) {
    const make = registry[pool.provider];
    if (make) out.set(name, make(name, config, env));
  }
  return out;
}
