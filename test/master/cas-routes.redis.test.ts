import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { farmConfigRaw, TestFarm } from '../helpers/farm';

describe('master: the CAS and action cache on its HTTP API', () => {
  let farm: TestFarm;
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'spillway-cas-'));
    farm = await new TestFarm(farmConfigRaw({ cas: { dir, prefix: '/cache', tokens: ['cas-token-0123456789'] } })).start();
  });
  after(() => farm.stop());

  it('stores and serves blobs under the prefix, with auth, next to the JSON API', async () => {
    const body = Buffer.from('object file bytes');
    const hash = createHash('sha256').update(body).digest('hex');
    const url = `${farm.addr.httpUrl}/cache/cas/${hash}`;
    const auth = { authorization: 'Bearer cas-token-0123456789' };
    assert.equal((await fetch(url, { headers: auth })).status, 404);
    assert.equal((await fetch(url, { method: 'PUT', body })).status, 401);
    assert.equal((await fetch(url, { method: 'PUT', body, headers: auth })).status, 200);
    const got = await fetch(url, { headers: auth });
    assert.equal(got.status, 200);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), body);
    const wrong = await fetch(`${farm.addr.httpUrl}/cache/cas/${'0'.repeat(64)}`, { method: 'PUT', body, headers: auth });
    assert.equal(wrong.status, 400);
    // The JSON routes keep their parser.
    assert.equal((await fetch(`${farm.addr.httpUrl}/api/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'b2g', argv: ['true'] }) })).status, 201);
  });
});
