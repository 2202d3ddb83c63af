import { defineScript } from '../../lib';

/**
 * Compare-and-set of one instance's state: the transition happens only if the state it
 * leaves is one the event allows, so two masters can never both take the same transition.
 */
export const APPLY_SCRIPT = defineScript(
  'instance-apply',
  `
-- Input:
--   KEYS[1]  the instance hash
--   KEYS[2]  the pool's set of instance ids
--   ARGV[1]  changes channel    ARGV[2] instance id
--   ARGV[3]  next state         ARGV[4] now (ms), stored as 'since'
--   ARGV[5]  '1': create (the event has no from-states, so the record must not exist yet)
--   ARGV[6]  n, then ARGV[7 .. 6+n]: the states the event may leave from
--   ARGV[7+n ..]  field/value pairs to set too, already encoded (null = '', booleans '1'/'0')
-- Output:
--   { 'OK', previous state or '', HGETALL after }
--   { 'EXISTS' | 'MISSING' | 'REFUSED', current state or '', HGETALL as it is }
local current = redis.call('HGET', KEYS[1], 'state')
local n = tonumber(ARGV[6])
if ARGV[5] == '1' then
  if current then return { 'EXISTS', current, redis.call('HGETALL', KEYS[1]) } end
else
  if not current then return { 'MISSING', '', {} } end
  local allowed = false
  for i = 7, 6 + n do
    if ARGV[i] == current then allowed = true break end
  end
  if not allowed then return { 'REFUSED', current, redis.call('HGETALL', KEYS[1]) } end
end
local fields = {}
for i = 7 + n, #ARGV do fields[#fields + 1] = ARGV[i] end
if #fields > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end
-- After the extra fields, so nothing a caller passes can overwrite the state machine's own.
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'since', ARGV[4])
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[1], cjson.encode({ id = ARGV[2], state = ARGV[3], version = version }))
return { 'OK', current or '', redis.call('HGETALL', KEYS[1]) }
`,
);
