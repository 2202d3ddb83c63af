import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { farmConfigRaw, TestFarm } from '../helpers/farm';

const CI = 'ci-cache-token-0123456789';
const DEV = 'dev-cache-token-0123456789';

/** The build cache's read-only and read-write tokens, tried against a real master. */
describe('master: cache tokens, read-only vs read-write, and anonymous access', () => {
  const blob = (s: string) => ({ body: Buffer.from(s), hash: createHash('sha256').update(s).digest('hex') });
  const start = (cas: Record<string, unknown>) => new TestFarm(farmConfigRaw({ cas: { dir: mkdtempSync(join(tmpdir(), 'spillway-cas-')), ...cas } })).start();

  describe('with CI and developer tokens', () => {
    let farm: TestFarm;
    before(async () => (farm = await start({ tokens: [CI], readTokens: [DEV] })));
    after(() => farm.stop());
    const url = (kind: 'cas' | 'ac', hash: string) => `${farm.addr.httpUrl}/${kind}/${hash}`;

    it('lets a read-only token read what a read-write token wrote, and refuses it writes with 403', async () => {
      const b = blob('object built by CI');
      assert.equal((await fetch(url('cas', b.hash), { method: 'PUT', body: b.body, headers: { authorization: `Bearer ${CI}` } })).status, 200);
      const got = await fetch(url('cas', b.hash), { headers: { authorization: `Bearer ${DEV}` } });
      assert.equal(got.status, 200);
      assert.deepEqual(Buffer.from(await got.arrayBuffer()), b.body);
      assert.equal((await fetch(url('cas', b.hash), { method: 'HEAD', headers: { authorization: `Bearer ${DEV}` } })).status, 200);
      const fm = await fetch(`${farm.addr.httpUrl}/cas/find-missing`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${DEV}` },
        body: JSON.stringify({ digests: [{ hash: b.hash, size: b.body.length }] }),
      });
      assert.equal(fm.status, 200);

      // A poisoned action result from a developer's machine, by Bearer and by Basic.
      const key = blob('action key').hash;
      const poison = JSON.stringify({ exitCode: 0, stdout: { hash: b.hash, size: b.body.length } });
      const devBasic = `Basic ${Buffer.from(`dev:${DEV}`).toString('base64')}`;
      for (const authorization of [`Bearer ${DEV}`, devBasic]) {
        const put = await fetch(url('ac', key), { method: 'PUT', body: poison, headers: { authorization } });
        assert.equal(put.status, 403);
        assert.equal(((await put.json()) as { message: string }).message, 'this cache token may only read');
      }
      assert.equal((await fetch(url('cas', b.hash), { method: 'DELETE', headers: { authorization: `Bearer ${DEV}` } })).status, 403);
      assert.equal((await fetch(url('ac', key), { headers: { authorization: `Bearer ${CI}` } })).status, 404, 'nothing was stored');
    });

    it('refuses anonymous reads and writes by default, and wrong tokens', async () => {
      const b = blob('anonymous attempt');
      const put = await fetch(url('cas', b.hash), { method: 'PUT', body: b.body });
      assert.equal(put.status, 401);
      assert.match(put.headers.get('www-authenticate') ?? '', /^Basic /);
      assert.equal((await fetch(url('cas', b.hash))).status, 401);
      assert.equal((await fetch(url('cas', b.hash), { headers: { authorization: 'Bearer not-a-cache-token-0123' } })).status, 401);
      assert.equal((await fetch(url('cas', b.hash), { headers: { authorization: `Bearer ${CI}` } })).status, 404);
    });

    it('reads the scheme case-insensitively and never a token from the query string', async () => {
      const b = blob('lower-case scheme');
      assert.equal((await fetch(url('cas', b.hash), { method: 'PUT', body: b.body, headers: { authorization: `bearer ${CI}` } })).status, 200);
      assert.equal((await fetch(url('cas', b.hash), { headers: { authorization: `BASIC ${Buffer.from(`x:${DEV}`).toString('base64')}` } })).status, 200);
      assert.equal((await fetch(`${url('cas', b.hash)}?token=${CI}`)).status, 401);
    });
  });

  describe('with anonymous reads allowed', () => {
    let farm: TestFarm;
    before(async () => (farm = await start({ tokens: [CI], anonymous: 'read' })));
    after(() => farm.stop());

    it('serves anyone, but writes still need the read-write token', async () => {
      const b = blob('public object');
      const url = `${farm.addr.httpUrl}/cas/${b.hash}`;
      assert.equal((await fetch(url, { method: 'PUT', body: b.body })).status, 401);
      assert.equal((await fetch(url, { method: 'PUT', body: b.body, headers: { authorization: `Bearer ${CI}` } })).status, 200);
      assert.equal((await fetch(url)).status, 200);
    });
  });
});
