import { defineScript } from '../../lib';

/**
 * Compare-and-swap of one address lease: a lease changes (bound to its instance) or goes (its
 * peer released) only if it is still the one the caller read, so two masters releasing or a
 * release racing a new allocation of the same address never undo each other.
 */
export const LEASE_SWAP_SCRIPT = defineScript(
  'vpn-lease-swap',
  `
-- Input:
--   KEYS[1]  the pool's lease hash: address -> lease JSON
--   ARGV[1]  address   ARGV[2] the lease JSON expected   ARGV[3] new lease JSON, '' = delete
-- Output:
--   1 swapped, 0 the lease is not (any more) the one expected
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1
`,
);
