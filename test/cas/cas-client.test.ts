import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CasClient, CasHttpError, DigestMismatchError, EMPTY_DIGEST, digestOf, digestOfFile, type ActionResult } from '../../src/cas';
import { tempRoot } from './cas-fixtures';
import { startCasServer, type CasServer } from './http-server';

describe('cas CasClient', () => {
  let s: CasServer | undefined;
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ root: dir, cleanup } = await tempRoot('client')));
  afterEach(async () => {
    await s?.close();
    s = undefined;
    await cleanup();
  });

  it('uploads only missing blobs (from memory and streamed from files) and downloads them verified', async () => {
    s = await startCasServer({ prefix: '/cache', auth: { tokens: ['agent-token'] } });
    const client = new CasClient({ baseUrl: `${s.url}/cache`, token: 'agent-token' });
    const file = path.join(dir, 'big.bin');
    const bigData = randomBytes(5 * 1024 * 1024 + 3);
    await fsp.writeFile(file, bigData);
    const big = await digestOfFile(file);
    assert.deepEqual(big, digestOf(bigData));
    const small = Buffer.from('small blob');
    await s.store.putBuffer(Buffer.from('already there'));
    const items = [
      { digest: digestOf(small), data: small },
      { digest: big, path: file },
      { digest: digestOf('already there'), data: Buffer.from('already there') },
      { digest: { ...EMPTY_DIGEST }, data: Buffer.alloc(0) },
    ];
    assert.deepEqual(await client.uploadMissing(items), [digestOf(small), big]);
    assert.deepEqual(await client.uploadMissing(items), [], 'second time nothing is missing');
    assert.equal(await s.store.has(big), true);

    const dest = path.join(dir, 'out', 'tool');
    assert.equal(await client.downloadToFile(big, dest, { mode: 0o755 }), true);
    assert.ok((await fsp.readFile(dest)).equals(bigData));
    assert.equal((await fsp.stat(dest)).mode & 0o777, 0o755);
    assert.equal(await client.downloadToFile(digestOf('nope'), path.join(dir, 'nope')), false);
    assert.ok((await client.getBlob(digestOf(small)))?.equals(small));
    assert.equal(await client.getBlob(digestOf('nope')), undefined);
  });

  it('refuses a download that does not match its digest, leaving no file', async () => {
    const wrong = Buffer.from('not what you asked for');
    const fakeFetch = (async () => new Response(wrong, { status: 200 })) as typeof fetch;
    const client = new CasClient({ baseUrl: 'http://cas.invalid', fetch: fakeFetch });
    const want = digestOf('the real thing');
    const dest = path.join(dir, 'x');
    await assert.rejects(client.downloadToFile(want, dest), DigestMismatchError);
    assert.deepEqual(await fsp.readdir(dir), []);
    await assert.rejects(client.getBlob(want), DigestMismatchError);
  });

  it('gets a miss for a blob corrupted on the server, leaving no file', async () => {
    s = await startCasServer();
    const client = new CasClient({ baseUrl: s.url });
    const data = randomBytes(1024 * 1024);
    const d = digestOf(data);
    await client.upload({ digest: d, data });
    const bytes = await fsp.readFile(s.store.blobPath(d.hash));
    bytes[100] ^= 0x80;
    await fsp.writeFile(s.store.blobPath(d.hash), bytes);
    // The server hashes a blob of this size before sending it: the corruption is a plain miss.
    assert.equal(await client.downloadToFile(d, path.join(dir, 'y')), false, 'removed on the server: a miss');
    assert.deepEqual(await fsp.readdir(dir), []);
    assert.equal(s.store.stats().corruptionsDetected, 1);
  });

  it('stores and fetches action results, and reports auth failures as CasHttpError', async () => {
    s = await startCasServer({ auth: { basic: [{ user: 'agent', password: 's3cret' }] } });
    const client = new CasClient({ baseUrl: s.url, basic: { user: 'agent', password: 's3cret' } });
    const out = Buffer.from('stdout text');
    await client.upload({ digest: digestOf(out), data: out });
    const result: ActionResult = {
      exitCode: 0,
      stdout: digestOf(out),
      stderr: { ...EMPTY_DIGEST },
      outputFiles: [{ path: 'a.o', digest: digestOf(out), mode: 0o644 }],
      agent: 'cloud-1',
      timings: { startedAt: 10, finishedAt: 20 },
    };
    const key = digestOf('act').hash;
    assert.equal(await client.getActionResult(key), undefined);
    assert.equal(await client.putActionResult(key, result), true);
    assert.deepEqual(await client.getActionResult(key), result);
    const failedKey = digestOf('act-failed').hash;
    assert.equal(await client.putActionResult(failedKey, { ...result, exitCode: 1 }), false);
    assert.equal(await client.getActionResult(failedKey), undefined);
    assert.equal(await client.putActionResult(failedKey, { ...result, exitCode: 1 }, { allowFailed: true }), true);
    assert.equal((await client.getActionResult(failedKey))?.exitCode, 1);

    const anonymous = new CasClient({ baseUrl: s.url });
    await assert.rejects(anonymous.findMissing([digestOf(out)]), (err: unknown) => err instanceof CasHttpError && err.status === 401);
  });
});
