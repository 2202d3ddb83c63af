import { defineScript } from '../../lib';

/**
 * The "one waker" guarantee: claims suspended instances for waking in one atomic step, so
 * each is claimed by exactly one caller across all masters, and only that caller starts it.
 * The caller passes candidates in preference order (read beforehand); the script re-checks
 * each one's state, so a stale candidate list can cost a claim but never double one.
 */
export const CLAIM_WAKE_SCRIPT = defineScript(
  'instance-claim-wake',
  `
-- Input:
--   KEYS[1 ..]  candidate instance hashes, most preferred first
--   ARGV[1]  changes channel    ARGV[2] how many to claim at most
--   ARGV[3]  next state         ARGV[4] now (ms), stored as 'since'
--   ARGV[5]  n, then ARGV[6 .. 5+n]: the states a wake may leave from
-- Output:
--   { HGETALL of each claimed instance, in claim order }
local want = tonumber(ARGV[2])
local n = tonumber(ARGV[5])
local from = {}
for i = 6, 5 + n do from[ARGV[i]] = true end
local claimed = {}
for _, key in ipairs(KEYS) do
  if #claimed >= want then break end
  local state = redis.call('HGET', key, 'state')
  if state and from[state] then
    redis.call('HSET', key, 'state', ARGV[3], 'since', ARGV[4])
    local version = redis.call('HINCRBY', key, 'version', 1)
    local id = redis.call('HGET', key, 'id')
    redis.call('PUBLISH', ARGV[1], cjson.encode({ id = id, state = ARGV[3], version = version }))
    claimed[#claimed + 1] = redis.call('HGETALL', key)
  end
end
return claimed
`,
);
