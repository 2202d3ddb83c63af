import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * A Lua script shipped as a TypeScript string constant rather than a `.lua` file: tsc puts it
 * in dist/ with the code that runs it, so no copy step or path arithmetic from `__dirname`
 * can leave a build without its scripts.
 */
export interface LuaScript {
  readonly name: string;
  readonly lua: string;
  readonly sha: string;
}

export function defineScript(name: string, lua: string): LuaScript {
  return { name, lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/**
 * Runs `script` by its SHA, sending the body only when this server has not seen it yet
 * (a fresh or restarted redis-server answers NOSCRIPT).
 */
export async function runScript(redis: Redis, script: LuaScript, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
  try {
    return await redis.evalsha(script.sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    return redis.eval(script.lua, keys.length, ...keys, ...args);
  }
}
