import { isHash } from './digest';
import { BadDigestError } from './errors';

/** What an object in the bucket holds: a CAS blob, an action result, or a raw action-cache pointer. */
export type ObjectKind = 'cas' | 'ac' | 'ac-raw';

export const OBJECT_KINDS: readonly ObjectKind[] = ['cas', 'ac', 'ac-raw'];

/**
 * The object key of `hash` under `prefix` (empty, or path segments ending in "/"). The hash is
 * checked here, at the one place keys are made, so nothing a client sends can name another
 * object of the bucket (`../`, a second prefix, an empty key).
 */
export function objectKey(prefix: string, kind: ObjectKind, hash: string): string {
  if (!isHash(hash)) throw new BadDigestError(`no object key for a malformed hash: ${String(hash).slice(0, 80)}`);
  return `${prefix}${kind}/${hash}`;
}
