import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as http from 'node:http';
import { EMPTY_DIGEST, digestOf, serializeActionResult, type ActionResult } from '../../src/cas';
import { waitUntil } from '../helpers/wait-until';
import { startCasServer, type CasServer } from './http-server';

describe('cas HTTP routes', () => {
  let s: CasServer;
  afterEach(async () => s?.close());

  it('serves blobs the Bazel/ccache way: 200 hit, 404 miss, HEAD, DELETE', async () => {
    s = await startCasServer({ prefix: '/cache' });
    const data = randomBytes(3 * 1024 * 1024 + 7);
    const d = digestOf(data);
    const url = `${s.url}/cache/cas/${d.hash}`;
    assert.equal((await fetch(url)).status, 404);
    assert.equal((await fetch(url, { method: 'HEAD' })).status, 404);
    const put = await fetch(url, { method: 'PUT', body: data, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(put.status, 200);
    const head = await fetch(url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(d.size));
    const get = await fetch(url);
    assert.equal(get.status, 200);
    assert.ok(Buffer.from(await get.arrayBuffer()).equals(data));
    assert.equal((await fetch(`${s.url}/cache/cas/${EMPTY_DIGEST.hash}`)).status, 200);
    assert.equal((await fetch(url, { method: 'DELETE' })).status, 200);
    assert.equal((await fetch(url, { method: 'DELETE' })).status, 404);
    assert.equal((await fetch(url)).status, 404);
    assert.equal((await fetch(`${s.url}/cas/${d.hash}`)).status, 404, 'routes live under the prefix only');
  });

  it('answers 400 for bad keys and bodies that do not hash to the key', async () => {
    s = await startCasServer();
    const data = Buffer.from('some bytes');
    assert.equal((await fetch(`${s.url}/cas/${digestOf('other').hash}`, { method: 'PUT', body: data })).status, 400);
    assert.equal((await fetch(`${s.url}/cas/${digestOf(data).hash.toUpperCase()}`, { method: 'PUT', body: data })).status, 400);
    assert.equal((await fetch(`${s.url}/cas/abc`)).status, 400);
    assert.equal((await fetch(`${s.url}/ac/xyz`)).status, 400);
    assert.equal(await s.store.has(digestOf(data)), false);
    // No content-type at all (ccache's curl may send none) still streams.
    const ok = await fetch(`${s.url}/cas/${digestOf(data).hash}`, { method: 'PUT', body: data, headers: { 'content-type': '' } });
    assert.equal(ok.status, 200);
    const other = Buffer.from('no content-type header at all');
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${s.url}/ac/${digestOf('k').hash}`, { method: 'PUT', headers: { 'content-length': other.length } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end(other);
    });
    assert.equal(status, 200);
    assert.equal(await (await fetch(`${s.url}/ac/${digestOf('k').hash}`)).text(), other.toString());
  });

  it('answers 413 over maxBlobBytes (declared or streamed) and 507 when the store is full', async () => {
    s = await startCasServer({ maxBlobBytes: 1000, maxBytes: 1500 });
    const big = Buffer.alloc(1001, 1);
    assert.equal((await fetch(`${s.url}/cas/${digestOf(big).hash}`, { method: 'PUT', body: big })).status, 413);
    const chunked = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(big.subarray(0, 600));
        c.enqueue(big.subarray(600));
        c.close();
      },
    });
    const res = await fetch(`${s.url}/cas/${digestOf(big).hash}`, { method: 'PUT', body: chunked, duplex: 'half' } as RequestInit);
    assert.equal(res.status, 413);
    const a = Buffer.alloc(900, 2);
    assert.equal((await fetch(`${s.url}/cas/${digestOf(a).hash}`, { method: 'PUT', body: a })).status, 200);
    // 900 + 900 > 1500, and the first one is evictable: it is evicted to make room.
    const b = Buffer.alloc(900, 3);
    assert.equal((await fetch(`${s.url}/cas/${digestOf(b).hash}`, { method: 'PUT', body: b })).status, 200);
    assert.equal((await fetch(`${s.url}/cas/${digestOf(a).hash}`)).status, 404);
    await s.close();
    s = await startCasServer({ maxBlobBytes: 1000, maxBytes: 500 });
    const c = Buffer.alloc(600, 4);
    assert.equal((await fetch(`${s.url}/cas/${digestOf(c).hash}`, { method: 'PUT', body: c })).status, 507);
  });

  it('requires auth when configured: Bearer, Basic in base64 and base64url', async () => {
    // This password's base64 contains '+' and '/', so its base64url form differs.
    const password = 'p>?>?~';
    const user = 'bazel';
    s = await startCasServer({ auth: { tokens: ['tok-123'], basic: [{ user, password }] } });
    const url = `${s.url}/cas/${EMPTY_DIGEST.hash}`;
    const b64 = Buffer.from(`${user}:${password}`).toString('base64');
    const b64url = Buffer.from(`${user}:${password}`).toString('base64url');
    assert.notEqual(b64.replace(/=+$/, ''), b64url);
    const noAuth = await fetch(url);
    assert.equal(noAuth.status, 401);
    assert.match(noAuth.headers.get('www-authenticate') ?? '', /^Basic /);
    assert.equal((await fetch(url, { headers: { authorization: 'Bearer tok-123' } })).status, 200);
    assert.equal((await fetch(url, { headers: { authorization: 'Bearer nope' } })).status, 401);
    assert.equal((await fetch(url, { headers: { authorization: `Basic ${b64}` } })).status, 200);
    assert.equal((await fetch(url, { headers: { authorization: `Basic ${b64url}` } })).status, 200);
    const tokAsPassword = Buffer.from('anyone:tok-123').toString('base64');
    assert.equal((await fetch(url, { headers: { authorization: `Basic ${tokAsPassword}` } })).status, 200);
    const wrong = Buffer.from(`${user}:wrong`).toString('base64');
    assert.equal((await fetch(url, { headers: { authorization: `Basic ${wrong}` } })).status, 401);
    const fm = await fetch(`${s.url}/cas/find-missing`, { method: 'POST', body: '{"digests":[]}', headers: { 'content-type': 'application/json' } });
    assert.equal(fm.status, 401);
  });

  it('keeps action results and opaque /ac/ values apart, serving whichever exists', async () => {
    s = await startCasServer();
    const stdout = Buffer.from('built\n');
    await fetch(`${s.url}/cas/${digestOf(stdout).hash}`, { method: 'PUT', body: stdout });
    const result: ActionResult = {
      exitCode: 0,
      stdout: digestOf(stdout),
      stderr: { ...EMPTY_DIGEST },
      outputFiles: [],
      agent: 'a1',
      timings: { startedAt: 1, finishedAt: 2 },
    };
    const ours = digestOf('action-ours').hash;
    const put = await fetch(`${s.url}/ac/${ours}`, { method: 'PUT', body: serializeActionResult(result), headers: { 'content-type': 'application/json' } });
    assert.equal(put.status, 200);
    assert.equal(put.headers.get('x-spillway-stored'), 'true');
    assert.deepEqual(await s.actionCache.get(ours), result);
    const got = await fetch(`${s.url}/ac/${ours}`);
    assert.equal(got.status, 200);
    assert.deepEqual(await got.json(), result);

    const raw = digestOf('ccache-key').hash;
    const opaque = Buffer.concat([Buffer.from('cCrS'), randomBytes(5000)]);
    assert.equal((await fetch(`${s.url}/ac/${raw}`, { method: 'PUT', body: opaque })).status, 200);
    const notOurs = digestOf('json-not-ours').hash;
    await fetch(`${s.url}/ac/${notOurs}`, { method: 'PUT', body: '{"hello":"world"}', headers: { 'content-type': 'application/json' } });
    assert.equal(await s.actionCache.get(raw), undefined);
    assert.equal(await s.actionCache.get(notOurs), undefined);
    assert.ok(Buffer.from(await (await fetch(`${s.url}/ac/${raw}`)).arrayBuffer()).equals(opaque));
    assert.equal(await (await fetch(`${s.url}/ac/${notOurs}`)).text(), '{"hello":"world"}');
    assert.equal((await fetch(`${s.url}/ac/${raw}`, { method: 'HEAD' })).status, 200);
    assert.equal((await fetch(`${s.url}/ac/${digestOf('never').hash}`)).status, 404);
    assert.equal((await fetch(`${s.url}/ac/${digestOf('never').hash}`, { method: 'HEAD' })).status, 404);

    // Incomplete result: its stdout blob disappears -> a miss, not a result with holes.
    await fetch(`${s.url}/cas/${digestOf(stdout).hash}`, { method: 'DELETE' });
    assert.equal((await fetch(`${s.url}/ac/${ours}`)).status, 404);
    assert.equal((await fetch(`${s.url}/ac/${raw}`, { method: 'DELETE' })).status, 200);
    assert.equal((await fetch(`${s.url}/ac/${raw}`)).status, 404);
  });

  it('answers find-missing exactly and leaves the host JSON routes alone', async () => {
    s = await startCasServer();
    const present = Buffer.from('present');
    await fetch(`${s.url}/cas/${digestOf(present).hash}`, { method: 'PUT', body: present });
    const absent = digestOf('absent');
    const wrongSize = { hash: digestOf(present).hash, size: 999 };
    const res = await fetch(`${s.url}/cas/find-missing`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ digests: [digestOf(present), absent, EMPTY_DIGEST, wrongSize, absent] }),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { missing: [absent, wrongSize] });
    const bad = await fetch(`${s.url}/cas/find-missing`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"digests":[{"hash":"x","size":1}]}' });
    assert.equal(bad.status, 400);
    const echo = await fetch(`${s.url}/api/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    assert.deepEqual(await echo.json(), { echoed: { a: 1 } });
  });

  it('never serves a corrupted blob in full', async () => {
    s = await startCasServer();
    const data = randomBytes(2 * 1024 * 1024);
    const d = digestOf(data);
    await fetch(`${s.url}/cas/${d.hash}`, { method: 'PUT', body: data });
    const file = s.store.blobPath(d.hash);
    const bytes = await fsp.readFile(file);
    bytes[12345] ^= 0x01;
    await fsp.writeFile(file, bytes);
    const res = await fetch(`${s.url}/cas/${d.hash}`);
    assert.equal(res.status, 404, 'hashed before the first byte: a miss, never a 200');
    assert.equal(s.store.stats().corruptionsDetected, 1);
    assert.equal((await fetch(`${s.url}/cas/${d.hash}`)).status, 404);
  });
  it('streams a PUT body to disk as it arrives instead of buffering it', async () => {
    s = await startCasServer();
    const data = randomBytes(8 * 1024 * 1024);
    const d = digestOf(data);
    const tmpDir = `${s.root}/tmp`;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const body = new ReadableStream<Uint8Array>({
      async start(c) {
        c.enqueue(data.subarray(0, 4 * 1024 * 1024));
        await gate;
        c.enqueue(data.subarray(4 * 1024 * 1024));
        c.close();
      },
    });
    const put = fetch(`${s.url}/cas/${d.hash}`, { method: 'PUT', body, duplex: 'half' } as RequestInit);
    // Most of the first half is on disk in the temp file while the client still holds the
    // other half: the store writes in batches of at most 1 MiB, it never buffers the body.
    const expected = 3 * 1024 * 1024;
    let onDisk = 0;
    const sizeOnDisk = async () => {
      const files = await fsp.readdir(tmpDir);
      return files.length ? (await fsp.stat(`${tmpDir}/${files[0]}`).catch(() => ({ size: 0 }))).size : 0;
    };
    await waitUntil(async () => (onDisk = await sizeOnDisk()) >= expected, { timeoutMs: 2_000, what: `${expected} bytes in the temp file` });
    assert.ok(onDisk <= 4 * 1024 * 1024, `on disk: ${onDisk}`);
    release();
    assert.equal((await put).status, 200);
    assert.equal(await s.store.has(d), true);
  });
});
