import Fastify, { type FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import { ActionCache, DiskStore, casRoutes, type CasRoutesOptions } from '../../src/cas';
import { FakeClock } from '../fakes/fake-clock';
import { recordingLogger, tempRoot } from './cas-fixtures';

export interface CasServer {
  url: string;
  app: FastifyInstance;
  store: DiskStore;
  actionCache: ActionCache;
  root: string;
  close(): Promise<void>;
}

/**
 * A real fastify server on 127.0.0.1 port 0 with the CAS routes registered the way the master
 * does it, next to a JSON route of the host's own (to prove the body parser stays scoped).
 */
export async function startCasServer(
  opts: Partial<Omit<CasRoutesOptions, 'store' | 'actionCache'>> & { maxBytes?: number } = {},
): Promise<CasServer> {
  const { root, cleanup } = await tempRoot('http');
  const clock = new FakeClock();
  const { log } = recordingLogger();
  const store = await DiskStore.open({ root, maxBytes: opts.maxBytes ?? 256 * 1024 * 1024, clock, log });
  const actionCache = await ActionCache.open({ root, store });
  const app = Fastify();
  app.post('/api/echo', async (request) => ({ echoed: request.body }));
  await app.register(casRoutes, {
    store,
    actionCache,
    maxBlobBytes: opts.maxBlobBytes ?? 64 * 1024 * 1024,
    log,
    ...(opts.prefix !== undefined ? { prefix: opts.prefix } : {}),
    ...(opts.auth !== undefined ? { auth: opts.auth } : {}),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    app,
    store,
    actionCache,
    root,
    async close() {
      await app.close();
      await store.close();
      await cleanup();
    },
  };
}
