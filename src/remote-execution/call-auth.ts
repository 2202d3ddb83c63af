import type { Metadata } from '@grpc/grpc-js';
import { CasAuth, type CasAccess, type CasAuthOptions } from '../cas';
import { Code, RpcError } from './rpc-error';

/**
 * The cache's tokens applied to gRPC calls: `authorization: Bearer T` metadata (Bazel:
 * `--remote_header=Authorization=Bearer T`), decided by the same {@link CasAuth} as /cas/ and
 * /ac/, so a token means the same on both.
 */
export class CallAuth {
  private readonly auth: CasAuth;

  /** `undefined` is open to anyone, as for the HTTP routes; the master always passes `cas` from its config. */
  constructor(options: CasAuthOptions | undefined) {
    this.auth = new CasAuth(options);
  }

  /** @throws RpcError UNAUTHENTICATED without a valid token, PERMISSION_DENIED for a read token writing */
  require(metadata: Metadata, need: CasAccess): void {
    const verdict = this.auth.check(authorization(metadata), need);
    if (verdict.ok) return;
    throw new RpcError(verdict.status === 401 ? Code.UNAUTHENTICATED : Code.PERMISSION_DENIED, verdict.message);
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
