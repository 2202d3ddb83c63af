import type { Metadata } from '@grpc/grpc-js';
import { CasAuth, type CasAccess, type CasAuthOptions } from '../cas';
import { Code, RpcError } from './rpc-error';

/** Distinct good authorization values remembered; the config's tokens are far fewer. */
const MAX_ACCEPTED = 256;

/**
 * The cache's tokens applied to gRPC calls: `authorization: Bearer T` metadata (Bazel:
 * `--remote_header=Authorization=Bearer T`), decided by the same {@link CasAuth} as /cas/ and
 * /ac/, so a token means the same on both.
 */
export class CallAuth {
  private readonly auth: CasAuth;
  /**
   * Authorization values already found good, with the access they grant checked: Bazel sends
   * the same header on every call, and the check compares it against every token in constant
   * time. Only accepted values enter, so a stream of wrong guesses neither fills this nor
   * skips a check.
   */
  private readonly accepted = new Map<string, Set<CasAccess>>();

  /** `undefined` is open to anyone, as for the HTTP routes; the master always passes `cas` from its config. */
  constructor(options: CasAuthOptions | undefined) {
    this.auth = new CasAuth(options);
  }

  /** @throws RpcError UNAUTHENTICATED without a valid token, PERMISSION_DENIED for a read token writing */
  require(metadata: Metadata, need: CasAccess): void {
    const header = authorization(metadata);
    if (typeof header === 'string' && this.accepted.get(header)?.has(need)) return;
    const verdict = this.auth.check(header, need);
    if (verdict.ok) {
      if (typeof header === 'string') this.remember(header, need);
      return;
    }
    throw new RpcError(verdict.status === 401 ? Code.UNAUTHENTICATED : Code.PERMISSION_DENIED, verdict.message);
  }

  private remember(header: string, need: CasAccess): void {
    let needs = this.accepted.get(header);
    if (!needs) {
      if (this.accepted.size >= MAX_ACCEPTED) this.accepted.clear();
      this.accepted.set(header, (needs = new Set()));
    }
    needs.add(need);
  }

  /** Whether the caller may write (for the capabilities it is told about). */
  mayWrite(metadata: Metadata): boolean {
    return this.auth.check(authorization(metadata), 'read-write').ok;
  }
}

function authorization(metadata: Metadata): string | string[] | undefined {
  const values = metadata.get('authorization').map((v) => (typeof v === 'string' ? v : v.toString('latin1')));
  if (values.length === 0) return undefined;
  return values.length === 1 ? values[0] : values;
}
