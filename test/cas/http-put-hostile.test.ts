import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { digestOf } from '../../src/cas';
import { waitUntil } from '../helpers/wait-until';
import { startCasServer, type CasServer } from './http-server';

/** Large PUTs that go wrong on the wire: nothing half-written may become visible or stay behind. */
describe('cas HTTP PUT, hostile clients', () => {
  let s: CasServer;
  afterEach(async () => {
    // An undici keep-alive socket of a refused PUT sometimes outlives its response, and
    // app.close() would wait for it; the store's own state is asserted inside each test.
    s?.app.server.closeAllConnections();
    await s?.close();
  });

  const tmpFiles = async () => fsp.readdir(`${s.root}/tmp`);
  // The server finds out about a vanished client on its own time; its temp dir is its only view.
  const noTempFiles = () => waitUntil(async () => (await tmpFiles()).length === 0 && s.store.stats().reservedBytes === 0, { what: 'no temp files and no reservation' });

  it('stores nothing from a body cut short of its Content-Length', async () => {
    s = await startCasServer();
    const data = randomBytes(8 * 1024 * 1024);
    const d = digestOf(data);
    const { port } = new URL(s.url);
    const sock = net.connect(Number(port), '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write(`PUT /cas/${d.hash} HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\ncontent-length: ${data.length}\r\n\r\n`);
    sock.write(data.subarray(0, 5 * 1024 * 1024));
    await waitUntil(async () => (await tmpFiles()).length === 1, { what: 'the upload under way' });
    sock.end();
    await noTempFiles();
    sock.destroy();
    assert.equal(await s.store.has(d), false);
    assert.equal((await fetch(`${s.url}/cas/${d.hash}`)).status, 404);
  });

  it('answers 400 to a large body that does not hash to its key, storing nothing', async () => {
    s = await startCasServer();
    const data = randomBytes(16 * 1024 * 1024);
    const other = digestOf(randomBytes(16));
    const res = await fetch(`${s.url}/cas/${other.hash}`, { method: 'PUT', body: data });
    assert.equal(res.status, 400);
    assert.equal((await res.json() as { error: string }).error, 'SPILLWAY_E_CAS_DIGEST_MISMATCH');
    assert.equal(await s.store.has({ hash: other.hash, size: data.length }), false);
    assert.equal(await s.store.has(digestOf(data)), false);
    assert.equal(s.store.stats().entries, 0);
    await noTempFiles();
  });

  it('answers 400 to a body that is one flipped byte off, and a corrected retry is stored', async () => {
    s = await startCasServer();
    const data = randomBytes(8 * 1024 * 1024 + 3);
    const d = digestOf(data);
    const bad = Buffer.from(data);
    bad[bad.length - 1] ^= 0x80;
    assert.equal((await fetch(`${s.url}/cas/${d.hash}`, { method: 'PUT', body: bad })).status, 400);
    assert.equal(await s.store.has(d), false);
    assert.equal((await fetch(`${s.url}/cas/${d.hash}`, { method: 'PUT', body: data })).status, 200);
    const got = Buffer.from(await (await fetch(`${s.url}/cas/${d.hash}`)).arrayBuffer());
    assert.ok(got.equals(data));
  });

  it('leaves no temp file when a chunked upload is aborted mid-stream, and keeps serving', async () => {
    s = await startCasServer();
    const data = randomBytes(8 * 1024 * 1024);
    const d = digestOf(data);
    const req = http.request(`${s.url}/cas/${d.hash}`, { method: 'PUT', headers: { 'transfer-encoding': 'chunked' } });
    req.on('error', () => undefined);
    req.write(data.subarray(0, 3 * 1024 * 1024));
    await waitUntil(async () => {
      const files = await tmpFiles();
      return files.length === 1 && (await fsp.stat(`${s.root}/tmp/${files[0]}`).catch(() => ({ size: 0 }))).size > 0;
    }, { what: 'bytes of the upload on disk' });
    req.destroy();
    await noTempFiles();
    assert.equal(await s.store.has(d), false);
    assert.equal((await fetch(`${s.url}/cas/${d.hash}`, { method: 'PUT', body: data })).status, 200);
    assert.equal(await s.store.has(d), true);
  });

  it('stores concurrent PUTs of one digest once, with one of them aborted and one wrong', async () => {
    s = await startCasServer();
    const data = randomBytes(12 * 1024 * 1024);
    const d = digestOf(data);
    const url = `${s.url}/cas/${d.hash}`;
    const aborted = http.request(url, { method: 'PUT', headers: { 'content-length': data.length } });
    aborted.on('error', () => undefined);
    aborted.write(data.subarray(0, 2 * 1024 * 1024));
    const wrong = Buffer.from(data);
    wrong[7] ^= 1;
    const puts = [
      ...Array.from({ length: 4 }, () => fetch(url, { method: 'PUT', body: data }).then((r) => r.status)),
      fetch(url, { method: 'PUT', body: wrong }).then((r) => r.status),
    ];
    aborted.destroy();
    assert.deepEqual(await Promise.all(puts), [200, 200, 200, 200, 400]);
    await noTempFiles();
    assert.equal(s.store.stats().entries, 1);
    assert.equal(s.store.stats().bytesStored, data.length, 'stored once');
    const got = Buffer.from(await (await fetch(url)).arrayBuffer());
    assert.ok(got.equals(data));
  });
});
