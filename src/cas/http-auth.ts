import { readAuthorization, sameSecret, TokenGrants } from '../lib';

/** What a cache client may do: reading is GET, HEAD and find-missing; writing is PUT and DELETE. */
export type CasAccess = 'read' | 'read-write';

/**
 * Who may use the cache over HTTP. Without this object the routes are open to anyone (the
 * library's default, for embedders); the master always passes one, from `cas` in its config.
 */
export interface CasAuthOptions {
  /** Read-write tokens, as `Authorization: Bearer <token>` or as the Basic password (any user). */
  tokens?: string[];
  /** Read-only tokens, presented the same way: developers may read what only CI may write. */
  readTokens?: string[];
  /** Read-write `Authorization: Basic base64(user:password)` pairs. */
  basic?: Array<{ user: string; password: string }>;
  /** What a client without credentials may do. @defaultValue 'none' */
  anonymous?: 'none' | CasAccess;
}

export type CasAuthVerdict = { ok: true } | { ok: false; status: 401 | 403; message: string };

/** Decides one request against `auth`; compiled once, since the token list does not change. */
export class CasAuth {
  private readonly grants: TokenGrants<CasAccess>;
  private readonly basic: ReadonlyArray<{ user: string; password: string }>;
  private readonly anonymous: 'none' | CasAccess;

  constructor(auth: CasAuthOptions | undefined) {
    // The first match wins, so a token listed as both stays read-write.
    this.grants = new TokenGrants<CasAccess>([
      ...(auth?.tokens ?? []).map((t) => [t, 'read-write'] as const),
      ...(auth?.readTokens ?? []).map((t) => [t, 'read'] as const),
    ]);
    this.basic = auth?.basic ?? [];
    this.anonymous = auth === undefined ? 'read-write' : (auth.anonymous ?? 'none');
  }

  check(header: string | readonly string[] | undefined, need: CasAccess): CasAuthVerdict {
    const given = readAuthorization(header);
    let access: CasAccess | undefined;
    if (given.kind === 'none') {
      if (allows(this.anonymous, need)) return { ok: true };
      return { ok: false, status: 401, message: need === 'read' ? 'the cache needs a token' : 'writing to the cache needs a read-write token' };
    }
    if (given.kind === 'malformed') return { ok: false, status: 401, message: given.reason };
    if (given.kind === 'bearer') access = this.grants.find(given.token);
    else {
      for (const p of given.pairs) {
        const basic = this.basic.some((b) => sameSecret(b.user, p.user) && sameSecret(b.password, p.password));
        access = basic ? 'read-write' : (this.grants.find(p.password) ?? access);
        if (access === 'read-write') break;
      }
    }
    if (access === undefined) return { ok: false, status: 401, message: 'wrong cache token' };
    if (!allows(access, need)) return { ok: false, status: 403, message: 'this cache token may only read' };
    return { ok: true };
  }
}

function allows(have: 'none' | CasAccess, need: CasAccess): boolean {
  return have === 'read-write' || (have === 'read' && need === 'read');
}
