import { defineScript } from '../../lib';

/**
 * A build's output is appended where the agent says it starts, in one step: output resent
 * after a reconnect (the agent cannot know what the previous master stored before it died)
 * is skipped byte for byte, so the stored log has every byte once, in order. Beside the log
 * (never in it: log.txt stays the build's bytes) each stored piece's offset and arrival time.
 */
export const APPEND_LOG_SCRIPT = defineScript(
  'build-append-log',
  `
-- Input:
--   KEYS[1]  the build's record hash (field logBytes: bytes of output accounted for)
--   KEYS[2]  the build's log list
--   KEYS[3]  the log's time marks: "<byte offset in the stored log> <ms>" per stored piece
--   ARGV[1]  data   ARGV[2] its offset in the build's output ('' = at the end)
--   ARGV[3]  logMaxBytes   ARGV[4] the marker stored where the log is cut
--   ARGV[5]  when the master received it (ms since the epoch)
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
-- The stored text can differ from the build's output (gaps, the cut), so its own length is kept.
local at = tonumber(redis.call('HGET', KEYS[1], 'logStored') or '0')
local pushed
if total <= max then
  pushed = data
  redis.call('RPUSH', KEYS[2], data)
else
  pushed = string.sub(data, 1, max - before)
  redis.call('RPUSH', KEYS[2], pushed, ARGV[4])
  pushed = pushed .. ARGV[4]
end
redis.call('HSET', KEYS[1], 'logStored', at + #pushed)
redis.call('RPUSH', KEYS[3], at .. ' ' .. ARGV[5])
return total
`,
);
