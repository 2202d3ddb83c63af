import { defineScript } from '../../lib';

/**
 * A build's finished record in one call instead of a MULTI of four commands (one per build, see
 * build-started-script.ts). It does not rely on the running record: a master killed right after
 * handing out a job never wrote it, so the identity is written again and the index entry added
 * if missing (NX keeps the first dispatch time). The log's length is the record's own, kept by
 * the log appends, and is answered so the caller's record matches the stored one.
 */
export const BUILD_FINISHED_SCRIPT = defineScript(
  'build-finished',
  `
-- Input:
--   KEYS[1] the build's record hash   KEYS[2] the builds index (zset by dispatch time)
--   KEYS[3] the job's attempts hash (attempt -> agent)
--   ARGV[1] dispatchedAt (the index score)   ARGV[2] the index member ("type:id:attempt")
--   ARGV[3] attempt   ARGV[4] agent name   ARGV[5..] the record's fields, as field, value pairs
-- Output:
--   the record's logBytes (0 when no output was stored)
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
local logBytes = redis.call('HGET', KEYS[1], 'logBytes')
redis.call('ZADD', KEYS[2], 'NX', ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
return tonumber(logBytes or '0')
`,
);
