import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import { casRoutes, createS3Client } from '../../src/cas';
import { openCas, type CasService } from '../../src/cli/cas-service';
import { parseConfig } from '../../src/config';
import { cacheView } from '../../src/http/cache-view';
import { MasterMetrics } from '../../src/http/metrics';
import { systemClock } from '../../src/lib';
import { recordingLogger, tempRoot } from '../cas/cas-fixtures';
import { TEST_BUCKET, TestS3 } from '../helpers/s3-server';
import { waitUntil } from '../helpers/wait-until';

interface Master {
  cas: CasService;
  app: FastifyInstance;
  url: string;
}

/**
 * Two masters as the composition root builds their caches from config (cas.s3 on one bucket),
 * each serving /cas/ and /ac/ over real HTTP: what one is sent, the other serves.
 */
describe('cli openCas with cas.s3 (two masters, one bucket, over HTTP)', function () {
  this.timeout(60_000);
  let s3: TestS3;
  const masters: Master[] = [];
  const cleanups: Array<() => Promise<void>> = [];

  async function master(): Promise<Master> {
    const { root, cleanup } = await tempRoot('s3-master');
    cleanups.push(cleanup);
    const config = parseConfig(
      {
        agents: { token: 'a-long-enough-agent-token-for-tests' },
        jobTypes: { build: {} },
        cas: { dir: root, anonymous: 'read-write', memoryCacheMb: 4, s3: { bucket: TEST_BUCKET, prefix: 'farm/', endpoint: s3.endpoint, forcePathStyle: true } },
      },
      {},
    );
    const cas = await openCas(config, systemClock, recordingLogger().log, (o) =>
      createS3Client({ ...o, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } }),
    );
    assert.ok(cas?.s3);
    const app = Fastify();
    await app.register(casRoutes, cas.routes);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const m = { cas, app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
    masters.push(m);
    return m;
  }

  beforeEach(async () => {
    s3 = await TestS3.start();
  });
  afterEach(async () => {
    for (const m of masters.splice(0)) {
      await m.app.close();
      await m.cas.close();
    }
    await s3.close();
    for (const c of cleanups.splice(0)) await c();
  });

  it('a blob and an /ac/ value PUT to one master are served by the other once uploaded; metrics show the tiers', async () => {
    const a = await master();
    const b = await master();
    const blob = randomBytes(70_000);
    const hash = createHash('sha256').update(blob).digest('hex');
    const acKey = createHash('sha256').update('some action').digest('hex');
    const acValue = Buffer.from('opaque action result bytes');
    assert.equal((await fetch(`${a.url}/cas/${hash}`, { method: 'PUT', body: blob })).status, 200);
    assert.equal((await fetch(`${a.url}/ac/${acKey}`, { method: 'PUT', body: acValue })).status, 200);
    await waitUntil(() => a.cas.s3!.stats().uploads.depth === 0, { timeoutMs: 15_000, what: 'A uploaded' });

    const head = await fetch(`${b.url}/cas/${hash}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(blob.length));
    const got = await fetch(`${b.url}/cas/${hash}`);
    assert.equal(got.status, 200);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), blob);
    const ac = await fetch(`${b.url}/ac/${acKey}`);
    assert.equal(ac.status, 200);
    assert.deepEqual(Buffer.from(await ac.arrayBuffer()), acValue);
    const missing = await fetch(`${b.url}/cas/find-missing`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ digests: [{ hash, size: blob.length }, { hash: 'f'.repeat(64), size: 3 }] }),
    });
    assert.deepEqual(await missing.json(), { missing: [{ hash: 'f'.repeat(64), size: 3 }] });

    // Served again by B: from its own disk or memory now, not S3.
    assert.equal((await fetch(`${b.url}/cas/${hash}`)).status, 200);
    const sources = { store: b.cas.disk, actionCache: b.cas.routes.actionCache, ...(b.cas.memory && { memory: b.cas.memory }), s3: b.cas.s3! };
    const metrics = new MasterMetrics({ queues: async () => [], pools: async () => [], agents: () => [], cas: sources });
    const text = (await metrics.text()).body;
    // From S3: the blob, the /ac/ value's pointer and the CAS blob it points to; then memory.
    assert.match(text, /spillway_cas_tier_hits_total\{tier="s3"\} 3/);
    assert.match(text, /spillway_cas_tier_hits_total\{tier="memory"\} 1/);
    assert.match(text, /spillway_cas_s3_upload_queue_depth 0/);
    assert.match(text, /spillway_cas_s3_upload_oldest_age_seconds 0/);
    // The dashboard's summary reads the same figures.
    const view = cacheView(sources);
    assert.deepEqual({ memory: view.reads.memory, s3: view.reads.s3 }, { memory: 1, s3: 3 });
    assert.deepEqual(view.s3, { queued: 0, oldestAgeMs: 0, dropped: 0, corruptObjects: 0, errors: {} });
    assert.equal(cacheView({ store: a.cas.disk, actionCache: a.cas.routes.actionCache, s3: a.cas.s3! }).reads.s3, 0, 'A served nothing from S3');
  });
});
