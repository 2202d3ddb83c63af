import { poolJobTypes, type Config } from '../../config';
import { inAnyNetwork, parseCidr, sameSecret, type IpNetwork } from '../../lib';
import type { HelloFrame } from '../../protocol';

/** Who a token says an agent is: a holder of a default token, or an agent of one pool. */
export type Principal = { kind: 'default' } | { kind: 'pool'; pool: string; jobTypes: ReadonlySet<string> };

export type Admission = { ok: true; principal: Principal } | { ok: false; reason: string; status: 'unauthorized' | 'forbidden' };

interface TokenEntry {
  token: string;
  principal: Principal;
}

/**
 * The agent listener's rules of entry, derived from the config: which networks may connect,
 * and which token admits whom. A pool token is narrower than a default one: its holder (a
 * cloud instance, whose user-data carries the token) may only register as a cloud agent for
 * that pool's job types, so a leaked pool token cannot pose as an on-prem machine.
 */
export class AgentAccess {
  /** Undefined: any address may connect. */
  readonly allow: readonly IpNetwork[] | undefined;
  private readonly tokens: readonly TokenEntry[];

  constructor(config: Config) {
    this.allow = config.agents.allow?.map((c) => {
      const r = parseCidr(c);
      // The config schema has already refused bad networks; this only narrows the type.
      if (!r.ok) throw new Error(r.reason);
      return r.network;
    });
    const entries: TokenEntry[] = config.agents.tokens.map((token) => ({ token, principal: { kind: 'default' } }));
    for (const [pool, p] of Object.entries(config.pools)) {
      const principal: Principal = { kind: 'pool', pool, jobTypes: new Set(poolJobTypes(config, pool)) };
      for (const token of p.agentTokens) entries.push({ token, principal });
    }
    this.tokens = entries;
  }

  allows(address: string): boolean {
    return this.allow === undefined || inAnyNetwork(this.allow, address);
  }

  /** Checks the hello's token and whether its holder may register as what the hello claims. */
  admit(hello: Pick<HelloFrame, 'token' | 'location' | 'jobTypes'>): Admission {
    // Every token is compared, matched or not, so the time taken says nothing about which matched.
    let match: Principal | undefined;
    for (const e of this.tokens) if (sameSecret(hello.token, e.token) && !match) match = e.principal;
    if (!match) return { ok: false, status: 'unauthorized', reason: 'wrong token' };
    if (match.kind === 'pool') {
      if (hello.location !== 'cloud') return { ok: false, status: 'forbidden', reason: `pool "${match.pool}" token used by an ${hello.location} agent` };
      const foreign = hello.jobTypes.filter((t) => !match.jobTypes.has(t));
      if (foreign.length > 0) {
        return { ok: false, status: 'forbidden', reason: `pool "${match.pool}" token does not cover job types ${foreign.join(', ')}` };
      }
    }
    return { ok: true, principal: match };
  }
}
