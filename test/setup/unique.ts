import { randomBytes } from 'node:crypto';

/** A key prefix no other test uses, so suites share one redis-server without interfering. */
export function uniquePrefix(label = 't'): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}
