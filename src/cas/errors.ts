import { SpillwayError } from '../lib';

/**
 * The bytes sent for a blob do not hash to (or are not the size of) the digest they were sent
 * under. The caller's upload is wrong; retrying the same bytes cannot succeed. HTTP 400.
 */
export class DigestMismatchError extends SpillwayError {
  readonly code = 'SPILLWAY_E_CAS_DIGEST_MISMATCH';
  readonly disposition = 'fatal';
}

/** A key or digest is malformed (not 64 lower-case hex, negative size...). HTTP 400. */
export class BadDigestError extends SpillwayError {
  readonly code = 'SPILLWAY_E_CAS_BAD_DIGEST';
  readonly disposition = 'fatal';
}

/**
 * The store cannot make room for a blob even after evicting everything evictable (the blob is
 * larger than the store, or the rest is held by uploads in flight). Space may free up, so the
 * caller may retry later. HTTP 507.
 */
export class CasFullError extends SpillwayError {
  readonly code = 'SPILLWAY_E_CAS_FULL';
  readonly disposition = 'retry';
}

/** A blob is larger than the configured per-blob maximum. HTTP 413. */
export class BlobTooLargeError extends SpillwayError {
  readonly code = 'SPILLWAY_E_CAS_TOO_LARGE';
  readonly disposition = 'fatal';
}

/**
 * A stored blob did not hash to its name when read: the disk corrupted it. The file has been
 * removed by the time this is raised, so a retry sees a plain miss.
 */
export class BlobCorruptError extends SpillwayError {
  readonly code = 'SPILLWAY_E_CAS_CORRUPT';
  readonly disposition = 'retry';
}

/** A remote CAS answered with an unexpected status. */
export class CasHttpError extends SpillwayError {
  readonly code = 'SPILLWAY_E_CAS_HTTP';
  readonly disposition: 'retry' | 'fatal';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.disposition = status >= 500 || status === 429 ? 'retry' : 'fatal';
  }
}

/**
 * An input tree is malformed or hostile: a name that is not a plain single component, a symlink
 * that is absolute or climbs out of the root, a special file, a directory blob that is not in
 * canonical form or does not match its digest. The same tree will fail the same way again.
 */
export class InvalidTreeError extends SpillwayError {
  readonly code = 'SPILLWAY_E_CAS_INVALID_TREE';
  readonly disposition = 'fatal';
}
