import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { BuildStore, type BuildIdentity, type BuildRecord } from '../../src/master/build-store';
import { farmConfigRaw, TestFarm } from '../helpers/farm';
import { redisUrl } from '../setup/root-hooks';

/** The builds table's older pages and filters: on the real store in a real Redis. */
describe('build pages: cursor and filters (real Redis)', function () {
  let redis: Redis;
  let store: BuildStore;
  const ids: string[] = [];

  before(async () => {
    redis = new Redis(redisUrl());
    store = new BuildStore({ redis, keyPrefix: `test-pages-${randomBytes(4).toString('hex')}`, keep: 10_000, logMaxBytes: 1000 });
    // 30 builds, several dispatched in the same millisecond (ties must neither repeat nor vanish).
    for (let i = 0; i < 30; i++) {
      const b: BuildIdentity = {
        id: `job-${String(i).padStart(2, '0')}`,
        type: i % 3 === 0 ? 'b2g' : 'linux64',
        attempt: 1,
        agent: i % 2 ? 'ec2-a' : 'rack-1',
        location: i % 2 ? 'cloud' : 'onprem',
        instanceId: i % 2 ? 'i-0123' : null,
        queuedAt: 1000 + i,
        dispatchedAt: 2000 + Math.floor(i / 4),
      };
      ids.push(b.id);
      await store.started(b, 3000 + i);
      if (i % 5 !== 4) await store.finished(b, { startedAt: 3000 + i, finishedAt: 4000 + i, result: i % 7 === 0 ? 'failure' : 'success', exitCode: i % 7 === 0 ? 3 : 0, signal: null, reason: null });
    }
  });
  after(() => redis.quit());

  const all = async (limit: number, filter: Parameters<BuildStore['page']>[2] = {}) => {
    const seen: BuildRecord[] = [];
    let before: string | undefined;
    for (let pages = 0; pages < 100; pages++) {
      const p = await store.page(limit, before, filter);
      assert.ok(p.builds.length <= limit);
      seen.push(...p.builds);
      if (p.next === null) return seen;
      before = p.next;
    }
    throw new Error('pages never ended');
  };

  it('walks every build once, newest first, whatever the page size', async () => {
    const first = await store.recent(30);
    for (const size of [1, 4, 7, 30, 100]) {
      const got = await all(size);
      assert.deepEqual(got.map((b) => b.id), first.map((b) => b.id), `page size ${size}`);
    }
    assert.equal(new Set(first.map((b) => b.id)).size, 30);
    for (let i = 1; i < first.length; i++) assert.ok(first[i - 1]!.dispatchedAt >= first[i]!.dispatchedAt);
  });

  it('is not shifted by builds dispatched between two pages', async () => {
    const p1 = await store.page(5, undefined);
    const b: BuildIdentity = { id: 'late', type: 'b2g', attempt: 1, agent: 'rack-1', location: 'onprem', instanceId: null, queuedAt: 9000, dispatchedAt: 9000 };
    await store.started(b, 9001);
    const p2 = await store.page(5, p1.next!);
    const expected = (await store.recent(11)).slice(6).map((r) => r.id);
    assert.deepEqual(p2.builds.map((r) => r.id), expected);
    assert.ok(!p2.builds.some((r) => p1.builds.some((q) => q.id === r.id)));
  });

  it('filters by type, location and result, across pages', async () => {
    const everything = await all(100);
    const check = async (filter: Parameters<BuildStore['page']>[2], want: (b: BuildRecord) => boolean) => {
      const expected = everything.filter(want).map((b) => b.id);
      assert.ok(expected.length > 0 && expected.length < everything.length, `filter ${JSON.stringify(filter)} selects some`);
      assert.deepEqual((await all(3, filter)).map((b) => b.id), expected, JSON.stringify(filter));
    };
    await check({ type: 'b2g' }, (b) => b.type === 'b2g');
    await check({ location: 'cloud' }, (b) => b.location === 'cloud');
    await check({ result: 'failure' }, (b) => b.result === 'failure');
    await check({ result: 'running' }, (b) => b.state === 'running');
    await check({ type: 'linux64', location: 'onprem', result: 'success' }, (b) => b.type === 'linux64' && b.location === 'onprem' && b.result === 'success');
    // A type that is a prefix of another ("b2" of "b2g") matches nothing.
    assert.deepEqual((await store.page(10, undefined, { type: 'b2' })).builds, []);
  });
});

describe('GET /api/builds: paging and filters over HTTP, hostile queries refused', function () {
  let farm: TestFarm;
  before(async () => {
    farm = await new TestFarm(farmConfigRaw()).start();
    await farm.agent({ name: 'rack-1', jobTypes: ['b2g', 'linux64'] });
    const jobs = [];
    for (let i = 0; i < 5; i++) jobs.push(await farm.submit({ type: i % 2 ? 'b2g' : 'linux64', shell: i === 3 ? 'exit 3' : 'true' }));
    await Promise.all(jobs.map((j) => farm.finished(j)));
  });
  after(() => farm.stop());

  const get = async (q: string) => {
    const res = await fetch(`${farm.addr.httpUrl}/api/builds${q}`, { headers: farm.auth('read') });
    return { status: res.status, body: (await res.json()) as { builds: BuildRecord[]; next: string | null; error?: { code: string; message: string } } };
  };

  it('pages with next and filters', async () => {
    const one = await get('?limit=2');
    assert.equal(one.status, 200);
    assert.equal(one.body.builds.length, 2);
    assert.match(one.body.next!, /^\d+:(b2g|linux64):[^:]+:1$/);
    const two = await get(`?limit=10&before=${encodeURIComponent(one.body.next!)}`);
    assert.equal(two.body.builds.length, 3);
    assert.equal(two.body.next, null);
    const failed = await get('?result=failure');
    assert.deepEqual(failed.body.builds.map((b) => b.exitCode), [3]);
    assert.ok((await get('?type=b2g')).body.builds.every((b) => b.type === 'b2g'));
    assert.equal((await get('?type=b2g')).body.builds.length, 2);
    assert.equal((await get('?location=cloud')).body.builds.length, 0);
  });

  it('refuses bad cursors, limits and filters with 400 and says why', async () => {
    for (const q of ['?limit=0', '?limit=1001', '?limit=abc', '?before=x', '?before=12', '?before=1:a:b', `?before=${'9'.repeat(17)}:a:b:1`, '?location=moon', '?result=<script>', '?type=', `?before=1:a:b:1&offset=3`, `?before=${encodeURIComponent('1:a:b:1' + 'x'.repeat(500))}`]) {
      const r = await get(q);
      assert.equal(r.status, 400, q);
      assert.equal(r.body.error!.code, 'SPILLWAY_E_BAD_REQUEST', q);
    }
    // A well-formed cursor of a build that is not there (trimmed) continues by its time instead.
    const r = await get('?before=1:b2g:gone:1');
    assert.equal(r.status, 200);
    assert.equal(r.body.builds.length, 0);
  });
});
