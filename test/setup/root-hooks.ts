import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRedisServer, type RedisServerHandle } from '../../src/lib';

let server: RedisServerHandle | undefined;
let scratch: string | undefined;

/** The redis-server every Redis suite talks to, started once per run on a free port. */
export function redisUrl(): string {
  if (!server) throw new Error('redis-server not started: run the suite through mocha (.mocharc.json loads the root hooks)');
  return server.url;
}

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(20_000);
    // Every temp dir of the run (ours, agents' work dirs and caches, child processes' — they
    // inherit TMPDIR) lives under one directory that is removed at the end, even where a
    // test had to SIGKILL the process that would have cleaned up after itself.
    scratch = mkdtempSync(join(tmpdir(), 'spillway-test-'));
    // Searchable, not listable: an agent started as root runs builds as `nobody`, which must
    // reach its build dir below an agent work dir in here.
    chmodSync(scratch, 0o711);
    process.env.TMPDIR = scratch;
    server = await startRedisServer();
  },
  async afterAll() {
    await server?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  },
};
