import { isHash, type Digest } from '../cas';
import { invalidArgument } from './rpc-error';
import type { Digest__Output } from './reapi-types';

/** The only digest function served; UNKNOWN (unset) means it, as the spec allows for SHA-256. */
const ACCEPTED_FUNCTIONS = new Set(['UNKNOWN', 'SHA256']);

/**
 * A digest from a request, checked: 64 lower-case hex and a non-negative integer size.
 * @throws RpcError INVALID_ARGUMENT naming `field`
 */
export function requestDigest(d: Digest__Output | null | undefined, field: string): Digest {
  if (!d) throw invalidArgument(`${field}: missing digest`);
  if (!isHash(d.hash)) throw invalidArgument(`${field}: hash must be 64 lower-case hex digits (SHA-256), got "${String(d.hash).slice(0, 80)}"`);
  if (!Number.isSafeInteger(d.sizeBytes) || d.sizeBytes < 0) throw invalidArgument(`${field}: size_bytes must be an integer >= 0, got ${d.sizeBytes}`);
  return { hash: d.hash, size: d.sizeBytes };
}

/** The REAPI spelling of a store digest. */
export function wireDigest(d: Digest): { hash: string; sizeBytes: number } {
  return { hash: d.hash, sizeBytes: d.size };
}

/** @throws RpcError INVALID_ARGUMENT for a digest function other than SHA-256 */
export function requireSha256(digestFunction: string | undefined): void {
  if (digestFunction !== undefined && !ACCEPTED_FUNCTIONS.has(digestFunction)) {
    throw invalidArgument(`digest_function ${digestFunction} is not supported (only SHA256)`);
  }
}

const INSTANCE_SEGMENT = /^[A-Za-z0-9_.-]{1,128}$/;
/** Path segments that cannot be part of an instance name (they start the resource part). */
export const RESERVED_SEGMENTS = new Set(['blobs', 'uploads', 'actions', 'actionResults', 'operations', 'capabilities', 'compressed-blobs']);

/**
 * An instance name: empty, or "/"-separated segments of letters, digits, "_", "-", "." that
 * are not "." or ".." and not one of the reserved words. All instances share one store.
 * @throws RpcError INVALID_ARGUMENT
 */
export function requestInstance(name: string): string {
  if (name === '') return name;
  if (name.length > 512) throw invalidArgument('instance_name longer than 512 characters');
  for (const seg of name.split('/')) {
    if (!INSTANCE_SEGMENT.test(seg) || seg === '.' || seg === '..' || RESERVED_SEGMENTS.has(seg)) {
      throw invalidArgument(`instance_name "${name.slice(0, 80)}": bad segment "${seg.slice(0, 40)}"`);
    }
  }
  return name;
}
