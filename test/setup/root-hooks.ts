import { startRedisServer, type RedisServerHandle } from '../../src/lib';

let server: RedisServerHandle | undefined;

/** The redis-server every Redis suite talks to, started once per run on a free port. */
export function redisUrl(): string {
  if (!server) throw new Error('redis-server not started: run the suite through mocha (.mocharc.json loads the root hooks)');
  return server.url;
}

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(20_000);
    server = await startRedisServer();
  },
  async afterAll() {
    await server?.stop();
  },
};
