import { defineScript } from '../../lib';

/**
 * Inserts or overwrites a whole instance record (the reconciler adopting what the provider
 * reports), optionally only if the version is still the one the caller decided on.
 */
export const ADOPT_SCRIPT = defineScript(
  'instance-adopt',
  `
-- Input:
--   KEYS[1]  the instance hash
--   KEYS[2]  the pool's set of instance ids
--   ARGV[1]  changes channel    ARGV[2] instance id
--   ARGV[3]  expected version: '' = any, '0' = must not exist, else the current version
--   ARGV[4 ..]  every field/value pair of the record except 'version', already encoded
-- Output:
--   { 'OK', previous state or '', HGETALL after }
--   { 'VERSION', current state or '', HGETALL as it is }
local current = redis.call('HGET', KEYS[1], 'state')
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= version then
  return { 'VERSION', current or '', redis.call('HGETALL', KEYS[1]) }
end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
-- A full overwrite: stray fields of the old record must not survive.
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', version + 1, unpack(fields))
redis.call('SADD', KEYS[2], ARGV[2])
local state = redis.call('HGET', KEYS[1], 'state')
redis.call('PUBLISH', ARGV[1], cjson.encode({ id = ARGV[2], state = state, version = version + 1 }))
return { 'OK', current or '', redis.call('HGETALL', KEYS[1]) }
`,
);
