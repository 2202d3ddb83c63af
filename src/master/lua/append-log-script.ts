import { defineScript } from '../../lib';

/**
 * A build's output is appended where the agent says it starts, in one step: output resent
 * after a reconnect (the agent cannot know what the previous master stored before it died)
 * is skipped byte for byte, so the stored log has every byte once, in order.
 */
export const APPEND_LOG_SCRIPT = defineScript(
  'build-append-log',
  `
-- Input:
--   KEYS[1]  the build's record hash (field logBytes: bytes of output accounted for)
--   KEYS[2]  the build's log list
--   ARGV[1]  data   ARGV[2] its offset in the build's output ('' = at the end)
--   ARGV[3]  logMaxBytes   ARGV[4] the marker stored where the log is cut
-- Output:
--   logBytes afterwards: how far the build's output is stored (or cut past the limit)
local stored = tonumber(redis.call('HGET', KEYS[1], 'logBytes') or '0')
local data = ARGV[1]
local offset = tonumber(ARGV[2]) or stored
if offset + #data <= stored then return stored end
if offset < stored then data = string.sub(data, stored - offset + 1) end
-- A gap (offset past what is stored) is skipped over, so that later offsets still line up.
local before = math.max(stored, offset)
local total = before + #data
redis.call('HSET', KEYS[1], 'logBytes', total)
local max = tonumber(ARGV[3])
if before >= max then return total end
if total <= max then
  redis.call('RPUSH', KEYS[2], data)
else
  redis.call('RPUSH', KEYS[2], string.sub(data, 1, max - before), ARGV[4])
end
return total
`,
);
