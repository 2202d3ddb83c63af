import { z } from 'zod';

const DEFAULT_URL = 'redis://127.0.0.1:6379';

/** `host:port` as ioredis takes a sentinel's address; IPv6 in brackets (`[::1]:26379`). */
const SENTINEL_ADDRESS = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/;

/** A sentinel's address, parsed from `host:port`. */
export interface SentinelAddress {
  host: string;
  port: number;
}

const sentinelAddress = z
  .string({ error: 'expected a sentinel address "host:port"' })
  .transform((s, ctx): SentinelAddress => {
    const m = SENTINEL_ADDRESS.exec(s.trim());
    const port = m ? Number(m[3]) : NaN;
    if (!m || port < 1 || port > 65535) {
      ctx.addIssue({ code: 'custom', message: `"${s}" is not a sentinel address "host:port" (port 1-65535; IPv6 as [addr]:port)` });
      return z.NEVER;
    }
    return { host: (m[1] ?? m[2])!, port };
  });

/**
 * TLS towards the data nodes or the sentinels: `true` for the system's CAs, or PEM files (read
 * when the master starts). Paths only, never PEM text, so a config never carries a private key.
 */
const tlsSchema = z.union(
  [
    z.literal(true),
    z
      .object({
        /** CA bundle the server's certificate must chain to. @defaultValue the system's CAs */
        ca: z.string().min(1).optional(),
        /** Client certificate (PEM file), for servers that require one (`tls-auth-clients yes`). */
        cert: z.string().min(1).optional(),
        /** Its private key (PEM file). */
        key: z.string().min(1).optional(),
        /** Name the server's certificate is checked against. @defaultValue the host connected to */
        servername: z.string().min(1).optional(),
      })
      .strict()
      .refine((t) => (t.cert === undefined) === (t.key === undefined), 'cert and key go together'),
  ],
  { error: 'expected true or a mapping of PEM files (ca, cert, key) and servername' },
);

/** What `tls` / `sentinelTls` hold once parsed. */
export type RedisTlsConfig = z.infer<typeof tlsSchema>;

const sentinelSchema = z
  .object({
    /** Sentinels asked for the current primary, in order; more are learned from them. */
    sentinels: z.array(sentinelAddress, { error: 'expected a list of sentinel addresses "host:port"' }).min(1, 'list at least one sentinel (three or more for a quorum)'),
    /** The name the sentinels monitor the primary under (`sentinel monitor NAME ...`). */
    masterName: z.string({ error: 'expected the master name the sentinels monitor' }).min(1, 'expected the master name the sentinels monitor'),
    /** ACL user on the data nodes. @defaultValue none (`default`) */
    username: z.string().min(1).optional(),
    /** Password of the data nodes (`requirepass`). @defaultValue none */
    password: z.string().min(1).optional(),
    /** ACL user on the sentinels. @defaultValue none */
    sentinelUsername: z.string().min(1).optional(),
    /** Password of the sentinels (their own `requirepass`). @defaultValue none */
    sentinelPassword: z.string().min(1).optional(),
    /** TLS to the data nodes. @defaultValue none: plain TCP */
    tls: tlsSchema.optional(),
    /** TLS to the sentinels. @defaultValue none: plain TCP */
    sentinelTls: tlsSchema.optional(),
  })
  .strict();

/** The sentinel form of `redis`, once parsed. */
export type RedisSentinelConfig = z.infer<typeof sentinelSchema>;

/**
 * Where Redis is: one server by URL (`redis://`, `rediss://` for TLS), or a primary found
 * through Redis Sentinel, which the connections follow across a failover. Not both.
 */
export const redisSchema = z
  .object({
    /** One Redis server. @defaultValue redis://127.0.0.1:6379 (unless `sentinel` is given) */
    url: z.string().regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL').optional(),
    /** A primary found through Redis Sentinel instead of `url`. */
    sentinel: sentinelSchema.optional(),
    /** BullMQ's key prefix; producers must use the same one. @defaultValue 'bull' */
    queuePrefix: z.string().min(1).default('bull'),
    /** Prefix of spillway's own keys (build records, logs). @defaultValue 'spillway' */
    keyPrefix: z.string().min(1).default('spillway'),
  })
  .strict()
  .refine((r) => r.url === undefined || r.sentinel === undefined, {
    message: 'give either redis.url (one server) or redis.sentinel (a primary found through Sentinel), not both (is REDIS_URL set?)',
  })
  .transform((r) => (r.sentinel ? { ...r, url: undefined, sentinel: r.sentinel } : { ...r, url: r.url ?? DEFAULT_URL, sentinel: undefined }));

export type RedisConfig = z.output<typeof redisSchema>;
