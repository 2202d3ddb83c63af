import { timingSafeEqual } from 'node:crypto';

/** Who may use the cache over HTTP. With neither list set (or both empty) the cache is open. */
export interface CasAuthOptions {
  /** Accepted as `Authorization: Bearer <token>`, or as the password of Basic auth (any user). */
  tokens?: string[];
  /** Accepted as `Authorization: Basic base64(user:password)`. */
  basic?: Array<{ user: string; password: string }>;
}

/** True when auth is configured at all. */
export function authRequired(auth: CasAuthOptions | undefined): boolean {
  return (auth?.tokens?.length ?? 0) + (auth?.basic?.length ?? 0) > 0;
}

/**
 * Checks an `Authorization` header against `auth`. Basic credentials are decoded as standard
 * base64 and, failing that, as base64url: Bazel encodes `--remote_cache=http://user:pass@host`
 * credentials with the URL-safe alphabet, other clients with the standard one.
 */
export function isAuthorized(header: string | undefined, auth: CasAuthOptions | undefined): boolean {
  if (!authRequired(auth)) return true;
  if (!header) return false;
  const space = header.indexOf(' ');
  if (space < 0) return false;
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  const tokens = auth?.tokens ?? [];
  if (scheme === 'bearer') return tokens.some((t) => safeEqual(t, value));
  if (scheme !== 'basic') return false;
  for (const decoded of decodeBasic(value)) {
    const colon = decoded.indexOf(':');
    if (colon < 0) continue;
    const user = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    if (auth?.basic?.some((b) => safeEqual(b.user, user) && safeEqual(b.password, password))) return true;
    if (tokens.some((t) => safeEqual(t, password))) return true;
  }
  return false;
}

function decodeBasic(value: string): string[] {
  const out = new Set<string>();
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(value)) out.add(Buffer.from(value, 'base64').toString('utf8'));
  if (/^[A-Za-z0-9_-]+={0,2}$/.test(value)) out.add(Buffer.from(value.replace(/=+$/, ''), 'base64url').toString('utf8'));
  return [...out];
}

// Constant-time for equal lengths; the length itself is not treated as secret.
function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
