import { createHash } from 'node:crypto';
import { sameSecret } from './secret';

/**
 * Longer `Authorization` values are refused unread: no token of ours comes near it, and a
 * hostile client must not make every request hash kilobytes against every token.
 */
export const MAX_AUTHORIZATION_LENGTH = 4096;

/** What a request's `Authorization` header presents. */
export type PresentedCredentials =
  | { kind: 'none' }
  | { kind: 'malformed'; reason: string }
  | { kind: 'bearer'; token: string }
  /** Every plausible decoding of the Basic value (see {@link readAuthorization}). */
  | { kind: 'basic'; pairs: ReadonlyArray<{ user: string; password: string }> };

/**
 * Reads an `Authorization` header. Schemes are case-insensitive (RFC 7235 2.1), so `bearer x`
 * is `Bearer x`. Basic credentials are decoded as standard base64 and, failing that, as
 * base64url: Bazel encodes `--remote_cache=http://user:pass@host` credentials with the
 * URL-safe alphabet, other clients with the standard one. Query strings are never read:
 * a token in a URL ends up in logs, proxies and browser history.
 */
export function readAuthorization(header: string | readonly string[] | undefined): PresentedCredentials {
  if (header === undefined || header === '') return { kind: 'none' };
  if (typeof header !== 'string') return { kind: 'malformed', reason: 'more than one Authorization header' };
  if (header.length > MAX_AUTHORIZATION_LENGTH) return { kind: 'malformed', reason: `Authorization header longer than ${MAX_AUTHORIZATION_LENGTH} characters` };
  const m = /^\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)[ \t]+(\S+)\s*$/.exec(header);
  if (!m) return { kind: 'malformed', reason: 'Authorization header is not "<scheme> <credentials>"' };
  const scheme = m[1]!.toLowerCase();
  const value = m[2]!;
  if (scheme === 'bearer') return { kind: 'bearer', token: value };
  if (scheme !== 'basic') return { kind: 'malformed', reason: `unsupported authorization scheme "${m[1]!.slice(0, 20)}" (use Bearer)` };
  const pairs: Array<{ user: string; password: string }> = [];
  for (const decoded of decodeBasic(value)) {
    const colon = decoded.indexOf(':');
    if (colon >= 0) pairs.push({ user: decoded.slice(0, colon), password: decoded.slice(colon + 1) });
  }
  return pairs.length > 0 ? { kind: 'basic', pairs } : { kind: 'malformed', reason: 'Basic credentials are not base64 of "user:password"' };
}

function decodeBasic(value: string): string[] {
  const out = new Set<string>();
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(value)) out.add(Buffer.from(value, 'base64').toString('utf8'));
  if (/^[A-Za-z0-9_-]+={0,2}$/.test(value)) out.add(Buffer.from(value.replace(/=+$/, ''), 'base64url').toString('utf8'));
  return [...out];
}

/**
 * Tokens and what each grants. A lookup compares the secret with every token, in constant
 * time each and without stopping at a match, so timing says neither which token matched nor
 * how far the search went.
 */
export class TokenGrants<G> {
  private readonly entries: ReadonlyArray<readonly [string, G]>;

  constructor(entries: Iterable<readonly [string, G]>) {
    this.entries = [...entries];
  }

  get size(): number {
    return this.entries.length;
  }

  find(secret: string): G | undefined {
    let found: G | undefined;
    for (const [token, grant] of this.entries) {
      if (sameSecret(token, secret) && found === undefined) found = grant;
    }
    return found;
  }
}

/**
 * What names a token in records and logs without revealing it: the first 8 hex digits of its
 * SHA-256 (`printf %s "$TOKEN" | sha256sum | cut -c1-8` tells an operator which one it was).
 * Tokens are long random secrets, so 32 bits of their hash help no one guess them.
 */
export function tokenFingerprint(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 8);
}
