import { defineScript } from '../../lib';

/**
 * Instance-hours accrue atomically per instance: each instance's time since its previous
 * accrual goes to the bucket of its current state, and now becomes its last accrual, in one
 * step, so masters accruing at the same moment never count the same seconds twice. Gaps
 * longer than the cap (no master was running) are cut to it rather than all charged to
 * whatever state the instance happens to be in now.
 */
export const ACCRUE_USAGE_SCRIPT = defineScript(
  'usage-accrue',
  `
-- Input:
--   KEYS[1]  hash: member ('pool/id') -> ms of its last accrual
--   KEYS[2]  the day's usage hash: field -> seconds
--   ARGV[1]  now (ms)   ARGV[2] longest gap charged (ms)   ARGV[3] TTL of the day hash (s)
--   ARGV[4 ..]  pairs: member, field ('' = neither billed nor saved)
-- Output:
--   { field, seconds charged (string), ... }: what this call charged; members not passed are forgotten
local now = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local present = {}
local charged = {}
for i = 4, #ARGV, 2 do
  local member, field = ARGV[i], ARGV[i + 1]
  present[member] = true
  local last = tonumber(redis.call('HGET', KEYS[1], member) or '')
  redis.call('HSET', KEYS[1], member, now)
  if last and field ~= '' and now > last then
    local secs = math.min(now - last, cap) / 1000
    redis.call('HINCRBYFLOAT', KEYS[2], field, secs)
    charged[field] = (charged[field] or 0) + secs
  end
end
for _, member in ipairs(redis.call('HKEYS', KEYS[1])) do
  if not present[member] then redis.call('HDEL', KEYS[1], member) end
end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
local out = {}
for field, secs in pairs(charged) do
  out[#out + 1] = field
  out[#out + 1] = tostring(secs)
end
return out
`,
);
