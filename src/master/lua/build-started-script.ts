import { defineScript } from '../../lib';

/**
 * A build's running record in one call instead of a MULTI of four commands: the master writes
 * one per dispatched build, and at a thousand builds a second the transaction's extra
 * commands and replies were a measurable share of its CPU. A record (and log) left by an
 * earlier write of the same attempt is replaced, so a resent `started` cannot mix two runs.
 */
export const BUILD_STARTED_SCRIPT = defineScript(
  'build-started',
  `
-- Input:
--   KEYS[1] the build's record hash   KEYS[2] its log list   KEYS[3] its log's time marks
--   KEYS[4] the builds index (zset by dispatch time)   KEYS[5] the job's attempts hash (attempt -> agent)
--   ARGV[1] dispatchedAt (the index score)   ARGV[2] the index member ("type:id:attempt")
--   ARGV[3] attempt   ARGV[4] agent name   ARGV[5..] the record's fields, as field, value pairs
-- Output:
--   0
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('ZADD', KEYS[4], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[5], ARGV[3], ARGV[4])
return 0
`,
);
