import { Metadata, status as Code, type ServiceError } from '@grpc/grpc-js';
import { SpillwayError } from '../lib';
import { reapiProtos } from './reapi-protos';
import type { Status } from './reapi-types';

export { Code };

/** A gRPC error as grpc-js sends it: `code`, and `details` as the status message. */
export class RpcError extends Error implements Partial<ServiceError> {
  readonly details: string;
  readonly metadata: Metadata;

  constructor(
    readonly code: Code,
    message: string,
    /** Typed google.rpc details (PreconditionFailure, BadRequest), sent as `grpc-status-details-bin`. */
    statusDetails: Array<{ typeUrl: string; value: Buffer }> = [],
  ) {
    super(message);
    this.details = message;
    this.metadata = new Metadata();
    if (statusDetails.length > 0) {
      // google.protobuf.Any comes from protobufjs's bundled definitions, which keep snake_case.
      const details = statusDetails.map((d) => ({ type_url: d.typeUrl, value: d.value }));
      const bytes = reapiProtos().status.encode({ code, message, details });
      this.metadata.set('grpc-status-details-bin', bytes);
    }
  }
}

export const invalidArgument = (message: string): RpcError => new RpcError(Code.INVALID_ARGUMENT, message);
export const notFound = (message: string): RpcError => new RpcError(Code.NOT_FOUND, message);

/** The gRPC code of a store error; everything unexpected is INTERNAL. */
const CODE_BY_ERROR: Record<string, Code> = {
  SPILLWAY_E_CAS_DIGEST_MISMATCH: Code.INVALID_ARGUMENT,
  SPILLWAY_E_CAS_BAD_DIGEST: Code.INVALID_ARGUMENT,
  SPILLWAY_E_CAS_TOO_LARGE: Code.INVALID_ARGUMENT,
  SPILLWAY_E_CAS_INVALID_TREE: Code.INVALID_ARGUMENT,
  SPILLWAY_E_CAS_FULL: Code.RESOURCE_EXHAUSTED,
  SPILLWAY_E_CAS_CORRUPT: Code.UNAVAILABLE,
};

/** Maps any thrown value to the error sent to the client (RpcErrors pass through). */
export function toRpcError(err: unknown): RpcError {
  if (err instanceof RpcError) return err;
  if (err instanceof SpillwayError) return new RpcError(CODE_BY_ERROR[err.code] ?? Code.INTERNAL, err.message);
  return new RpcError(Code.INTERNAL, 'internal error');
}

/** A google.rpc.Status for the per-blob results of the batch calls. */
export function statusOf(err: unknown): Status {
  const e = toRpcError(err);
  return { code: e.code, message: e.details };
}

export const OK_STATUS: Status = { code: Code.OK, message: '' };
