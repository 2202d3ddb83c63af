import { defineScript } from '../../lib';

/**
 * Fails a job that no master holds (waiting, prioritized, delayed or paused) as cancelled, in
 * one step. BullMQ takes a job with a script of its own (moveToActive: out of the wait list and
 * locked at once), so either this runs first and the job never reaches a worker, or the job
 * is locked and this leaves it alone, for the master that holds it to cancel. BullMQ offers no
 * call for it: `Job.remove` would delete the job (its payload, which a retry needs, and its
 * failed reason, which `submit --wait` reads), and `moveToFailed` needs the job active and
 * locked. The writes are the ones BullMQ's moveToFinished makes for a failed job, so its
 * tooling, QueueEvents and the `failed` count see an ordinary failed job.
 */
export const CANCEL_WAITING_SCRIPT = defineScript(
  'job-cancel-waiting',
  `
-- Input:
--   KEYS[1] wait   KEYS[2] paused   KEYS[3] prioritized   KEYS[4] delayed
--   KEYS[5] failed   KEYS[6] completed   KEYS[7] active   KEYS[8] the job's hash
--   KEYS[9] events stream   KEYS[10] meta
--   ARGV[1] job id   ARGV[2] now (ms)   ARGV[3] failedReason   ARGV[4] the queue's key prefix ("bull:b2g:")
-- Output:
--   what the job was and is now: "waiting", "prioritized", "delayed" (cancelled by this call);
--   "active" (a master holds it, or held it and died: left alone); "completed", "failed";
--   "missing" (no such job); "unknown" (another state, e.g. waiting-children: left alone)
local jobId = ARGV[1]
if redis.call('EXISTS', KEYS[8]) == 0 then return 'missing' end
if redis.call('EXISTS', KEYS[8] .. ':lock') == 1 then return 'active' end
if redis.call('ZSCORE', KEYS[5], jobId) then return 'failed' end
if redis.call('ZSCORE', KEYS[6], jobId) then return 'completed' end
local was
if redis.call('ZREM', KEYS[3], jobId) == 1 then
  was = 'prioritized'
elseif redis.call('ZREM', KEYS[4], jobId) == 1 then
  was = 'delayed'
elseif redis.call('LREM', KEYS[1], 1, jobId) == 1 then
  was = 'waiting'
elseif redis.call('LREM', KEYS[2], 1, jobId) == 1 then
  was = 'waiting'
elseif redis.call('LPOS', KEYS[7], jobId) then
  return 'active'
else
  return 'unknown'
end
local now = ARGV[2]
redis.call('ZADD', KEYS[5], now, jobId)
redis.call('HSET', KEYS[8], 'failedReason', ARGV[3], 'finishedOn', now)
redis.call('HDEL', KEYS[8], 'defa')
-- A deduplication id set by its producer is released, as BullMQ does when a job finishes.
local deid = redis.call('HGET', KEYS[8], 'deid')
if deid then
  local dedupKey = ARGV[4] .. 'de:' .. deid
  if redis.call('GET', dedupKey) == jobId then redis.call('DEL', dedupKey) end
end
local maxEvents = redis.call('HGET', KEYS[10], 'opts.maxLenEvents') or 10000
redis.call('XTRIM', KEYS[9], 'MAXLEN', '~', maxEvents)
redis.call('XADD', KEYS[9], '*', 'event', 'failed', 'jobId', jobId, 'failedReason', ARGV[3], 'prev', was)
return was
`,
);
