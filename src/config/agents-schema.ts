import { z } from 'zod';
import { parseCidr } from '../lib';
import { posInt } from './pool-schema';
import { secretToken } from './secret-token';

const port = () => z.number({ error: 'expected a port number (0-65535)' }).int().min(0).max(65535);

/** An agent token: long enough that guessing it within the registration rate limit is hopeless. */
export const agentToken = secretToken;

const cidr = z.string().superRefine((s, ctx) => {
  const r = parseCidr(s);
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.reason });
});

const tlsSchema = z
  .object({
    /** PEM certificate (chain) the listener presents; agents then connect with wss://. */
    cert: z.string().min(1),
    /** PEM private key of `cert`. */
    key: z.string().min(1),
    /** PEM CA certificate(s) agents' client certificates are checked against. */
    ca: z.string().min(1).optional(),
    /** Refuse agents without a client certificate signed by `ca`. @defaultValue false */
    requireClientCert: z.boolean().default(false),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.requireClientCert && !t.ca) ctx.addIssue({ code: 'custom', path: ['ca'], message: 'required when requireClientCert is true' });
  });

export const agentsSchema = z
  .object({
    /** The older spelling of `listen.host`; either may be used (both only when they agree). */
    host: z.string().min(1).optional(),
    listen: z
      .object({
        /**
         * Where the agent listener binds: the VPN address in production. Loopback by default,
         * like the HTTP API, so a fresh master is not reachable from the network by accident.
         * @defaultValue '127.0.0.1'
         */
        host: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
    port: port().default(8081),
    /** The default agent token (on-prem agents); or set SPILLWAY_AGENT_TOKEN. */
    token: agentToken().optional(),
    /**
     * More accepted default tokens; during a rotation list the new and the old one
     * (`[new, old]`). With `token` unset the first is the one the master's own local agents get.
     */
    tokens: z.array(agentToken()).default([]),
    /**
     * Networks (CIDR, IPv4 or IPv6) agents may connect from; other peers are cut off before
     * TLS or the websocket upgrade. @defaultValue any address
     */
    allow: z.array(cidr).min(1, 'list at least one network, or leave allow out to accept any address').optional(),
    /** wss: the listener's certificate and key, and optionally client certificates. */
    tls: tlsSchema.optional(),
    /** A token bucket per remote address: registration attempts beyond it are closed with 4430. */
    registrationRate: z
      .object({
        /** Attempts an address may make at once. @defaultValue 20 */
        burst: posInt().default(20),
        /** Attempts per minute an address earns back. @defaultValue 60 */
        perMinute: z.number({ error: 'expected a positive number' }).positive().default(60),
      })
      .strict()
      .prefault({}),
    /** How often agents send a heartbeat. @defaultValue 5 */
    heartbeatSec: z.number({ error: 'expected a positive number' }).positive().default(5),
    /** An agent silent for this long is lost and its builds are retried. @defaultValue 20 */
    lostAfterSec: z.number({ error: 'expected a positive number' }).positive().default(20),
    /** An agent must say hello within this time after connecting. @defaultValue 10 */
    helloTimeoutSec: z.number({ error: 'expected a positive number' }).positive().default(10),
    /** Frames larger than this close the connection (1009). @defaultValue 1048576 */
    maxFrameBytes: posInt().default(1024 * 1024),
    /**
     * How much of what agents send the master holds unprocessed (received, not yet applied,
     * e.g. results waiting for Redis): past either bound the sending connection's reads pause
     * until its frames are done, so agents that answer at once or flood frames queue in their
     * own socket buffers instead of the master's memory (README: "Memory").
     */
    ingest: z
      .object({
        /** Unprocessed frames per connection. @defaultValue 4 */
        framesPerConnection: posInt().default(4),
        /** Unprocessed frame bytes over all connections, MiB. @defaultValue 64 */
        maxMb: posInt().default(64),
      })
      .strict()
      .prefault({}),
    /**
     * Which free executor gets the next job, per location (on-prem always first): `pack` the
     * busiest agent with a free executor (idle cloud instances then reach their quiet period
     * and are suspended), `spread` the least recently used.
     */
    placement: z
      .object({
        /** @defaultValue 'spread' */
        onprem: z.enum(['pack', 'spread']).default('spread'),
        /** @defaultValue 'pack' */
        cloud: z.enum(['pack', 'spread']).default('pack'),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine(
    (a, ctx) => {
      // Runs even when other agents settings are invalid (`when`), so `a` is read defensively.
      const raw = a as { token?: unknown; tokens?: unknown; host?: unknown; listen?: { host?: unknown } };
      if (raw.token === undefined && !(Array.isArray(raw.tokens) && raw.tokens.length > 0)) {
        ctx.addIssue({ code: 'custom', path: ['token'], message: 'required (or set SPILLWAY_AGENT_TOKEN, or list agents.tokens)' });
      }
      const listenHost = raw.listen?.host;
      if (raw.host !== undefined && listenHost !== undefined && raw.host !== listenHost) {
        ctx.addIssue({ code: 'custom', path: ['listen', 'host'], message: 'agents.host and agents.listen.host disagree; keep one' });
      }
    },
    { when: () => true },
  )
  // `token` stays the one token the master hands out (to its local agents); `tokens` becomes
  // every accepted default token, so the listener checks one list. `host` is the one bind
  // address, whichever spelling gave it.
  .transform(({ listen, ...a }) => {
    const tokens = [...new Set([...(a.token === undefined ? [] : [a.token]), ...a.tokens])];
    return { ...a, host: listen?.host ?? a.host ?? '127.0.0.1', token: tokens[0]!, tokens };
  });

export type AgentsConfig = z.output<typeof agentsSchema>;
