import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import { ActionCache, CasAuth, CasHotPath, DiskStore, MemoryTier, casRoutes, digestOf } from '../../src/cas';
import { FakeClock } from '../fakes/fake-clock';
import { recordingLogger, tempRoot } from './cas-fixtures';

describe('cas CasHotPath (memory-tier hits on node:http, before fastify)', () => {
  let cleanup: () => Promise<void>;
  let disk: DiskStore;
  let app: FastifyInstance;
  let url: string;
  /** Requests fastify saw: a hot hit must not be one of them. */
  let routed: string[];
  const token = 'hot-path-test-read-write-token';
  const readToken = 'hot-path-test-read-only-token';

  beforeEach(async () => {
    let root: string;
    ({ root, cleanup } = await tempRoot('hot'));
    const { log } = recordingLogger();
    disk = await DiskStore.open({ root, maxBytes: 64 * 1024 * 1024, clock: new FakeClock(), log });
    const tier = new MemoryTier({ inner: disk, maxBytes: 1024 * 1024, log });
    const auth = { tokens: [token], readTokens: [readToken] };
    const hot = new CasHotPath({ blobs: tier, auth: new CasAuth(auth), prefix: '/cache' });
    app = Fastify({ serverFactory: hot.serverFactory(), keepAliveTimeout: 12_345 });
    routed = [];
    app.addHook('onRequest', async (req) => {
      routed.push(`${req.method} ${req.url}`);
    });
    const actionCache = await ActionCache.open({ root, store: tier });
    await app.register(casRoutes, { store: tier, actionCache, maxBlobBytes: 1024 * 1024, log, prefix: '/cache', auth });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/cache/cas/`;
  });
  afterEach(async () => {
    await app.close();
    await disk.close();
    await cleanup();
  });

  const get = (hash: string, t = token, suffix = '') => fetch(`${url}${hash}${suffix}`, { headers: { authorization: `Bearer ${t}` } });

  it('answers a hit already in memory without fastify, byte for byte, with fastify\'s server settings', async () => {
    const data = randomBytes(4096);
    const { hash } = digestOf(data);
    await disk.putBuffer(data);
    const first = await get(hash);
    assert.equal(first.status, 200);
    assert.ok(Buffer.from(await first.arrayBuffer()).equals(data));
    assert.equal(routed.length, 1, 'the first read fills the tier through the routes');
    const hit = await get(hash);
    assert.equal(hit.status, 200);
    assert.equal(hit.headers.get('content-length'), '4096');
    assert.equal(hit.headers.get('content-type'), 'application/octet-stream');
    assert.ok(Buffer.from(await hit.arrayBuffer()).equals(data));
    assert.equal(routed.length, 1, 'the hit never reached fastify');
    assert.equal(app.server.keepAliveTimeout, 12_345);
  });

  it('leaves refusals, queries, HEAD, writes and evicted blobs to the routes, which answer as before', async () => {
    const data = randomBytes(512);
    const { hash } = digestOf(data);
    await disk.putBuffer(data);
    assert.equal((await get(hash)).status, 200);
    routed = [];
    assert.equal((await get(hash, 'not-a-token-of-this-cache')).status, 401);
    assert.equal((await fetch(`${url}${hash}`)).status, 401);
    assert.equal((await get(hash, readToken)).status, 200, 'a read token reads (here on the hot path)');
    assert.equal((await get(hash, token, '?x=1')).status, 200);
    assert.equal((await fetch(`${url}${hash}`, { method: 'HEAD', headers: { authorization: `Bearer ${token}` } })).status, 200);
    assert.equal((await get(hash.toUpperCase())).status, 400);
    assert.deepEqual(routed.map((r) => r.split(' ')[0]), ['GET', 'GET', 'GET', 'HEAD', 'GET']);
    // Gone from the disk behind the tier's back: the tier must not keep answering for it.
    assert.equal(await disk.delete(hash), true);
    routed = [];
    assert.equal((await get(hash)).status, 404);
    assert.equal(routed.length, 1);
  });
});
