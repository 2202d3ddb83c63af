import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import Fastify, { type FastifyInstance } from 'fastify';
import net, { type AddressInfo } from 'node:net';
import { ActionCache, CasAuth, CasHotPath, DiskStore, MemoryTier, RawHitPath, casRoutes, digestOf } from '../../src/cas';
import { FakeClock } from '../fakes/fake-clock';
import { waitUntil } from '../helpers/wait-until';
import { recordingLogger, tempRoot } from './cas-fixtures';

const token = 'raw-hit-test-read-write-token';
const readToken = 'raw-hit-test-read-only-token';
const auth = { tokens: [token], readTokens: [readToken] };

/** Blob bytes that cannot be mistaken for a status line when responses are split apart. */
const blob = (bytes: number) => Buffer.from(randomBytes(bytes / 2).toString('hex'), 'latin1');

describe('cas RawHitPath (memory-tier hits answered from the socket, before node:http)', () => {
  let cleanup: () => Promise<void>;
  let root: string;
  let disk: DiskStore;
  let tier: MemoryTier;
  let raw: RawHitPath;
  let actionCache: ActionCache;
  /** The same routes, store and tier with the raw path (`fast`) and without it (`slow`). */
  let fast: FastifyInstance;
  let slow: FastifyInstance;
  /** Requests node:http parsed on the fast server: a raw answer is never one of them. */
  let parsed: string[];

  async function server(withRaw: boolean): Promise<FastifyInstance> {
    const { log } = recordingLogger();
    const hot = new CasHotPath({ blobs: tier, auth: new CasAuth(auth), prefix: '/cache' });
    const app = Fastify({ serverFactory: hot.serverFactory() });
    const actionCache = await ActionCache.open({ root, store: tier });
    await app.register(casRoutes, { store: tier, actionCache, maxBlobBytes: 1024 * 1024, log, prefix: '/cache', auth });
    await app.ready();
    if (withRaw) {
      app.server.on('request', (req: { method?: string; url?: string }) => parsed.push(`${req.method} ${req.url}`));
      raw.install(app.server);
    }
    await app.listen({ host: '127.0.0.1', port: 0 });
    return app;
  }

  beforeEach(async () => {
    ({ root, cleanup } = await tempRoot('raw-hit'));
    const { log } = recordingLogger();
    disk = await DiskStore.open({ root, maxBytes: 64 * 1024 * 1024, clock: new FakeClock(), log });
    tier = new MemoryTier({ inner: disk, maxBytes: 1024 * 1024, log });
    actionCache = await ActionCache.open({ root, store: tier });
    raw = new RawHitPath({ blobs: tier, actionValues: actionCache, auth: new CasAuth(auth), prefix: '/cache', clock: new FakeClock() });
    parsed = [];
    fast = await server(true);
    slow = await server(false);
  });
  afterEach(async () => {
    await fast.close();
    await slow.close();
    await disk.close();
    await cleanup();
  });

  const portOf = (app: FastifyInstance) => (app.server.address() as AddressInfo).port;

  /**
   * Writes `parts` in turn on a new connection; resolves with every byte back once the server
   * closes it (so the last request should say `Connection: close`). The client never half-closes:
   * node:http drops an answer still pending when it does.
   */
  async function exchange(app: FastifyInstance, parts: Array<string | Buffer>): Promise<string> {
    const socket = net.connect(portOf(app), '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    const closed = new Promise((r) => socket.once('close', r));
    for (const p of parts) await new Promise<void>((r) => socket.write(p, () => r()));
    await closed;
    return Buffer.concat(chunks).toString('latin1');
  }

  /** What both servers answer to the same bytes, with the Date header (the only thing allowed to differ) blanked. */
  async function bothAnswer(parts: Array<string | Buffer>): Promise<{ fast: string; slow: string }> {
    const strip = (s: string) => s.replace(/\r\nDate: [^\r]*/g, '\r\nDate: -');
    return { fast: strip(await exchange(fast, parts)), slow: strip(await exchange(slow, parts)) };
  }

  const get = (hash: string, headers = `Host: x\r\nAuthorization: Bearer ${token}\r\n`, method = 'GET', version = 'HTTP/1.1') =>
    `${method} /cache/cas/${hash} ${version}\r\n${headers}\r\n`;
  /** Ends an exchange whose requests leave the connection open: node:http answers it 404 and closes. */
  const LAST = 'GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
  const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));

  /** The answers to GETs in `text`, split by their content-length (every answer here has one). */
  function answersIn(text: string): Array<{ status: number; body: string }> {
    const out: Array<{ status: number; body: string }> = [];
    let at = 0;
    while (at < text.length) {
      const end = text.indexOf('\r\n\r\n', at);
      assert.ok(end > 0, `a whole head at ${at}`);
      const head = text.slice(at, end);
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
      out.push({ status: Number(head.slice(9, 12)), body: text.slice(end + 4, end + 4 + length) });
      at = end + 4 + length;
    }
    return out;
  }

  /** A blob on disk and in the memory tier, so either server's hot paths may answer it. */
  async function hotBlob(bytes = 4096): Promise<{ data: Buffer; hash: string }> {
    const data = blob(bytes);
    const { hash } = digestOf(data);
    await disk.putBuffer(data);
    assert.ok(await tier.get(hash));
    return { data, hash };
  }

  it('never answers a smuggling attempt, an odd head or a refusal: node:http does, byte for byte as without the raw path', async () => {
    const { hash } = await hotBlob();
    const inner = get(hash);
    const hostile: Array<[string, string]> = [
      ['CL on GET with a body that looks like a second request', `GET /cache/cas/${hash} HTTP/1.1\r\nHost: x\r\nContent-Length: ${inner.length}\r\n\r\n${inner}`],
      ['TE and CL', `GET /cache/cas/${hash} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n`],
      ['two CLs', `GET /cache/cas/${hash} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello`],
      ['wrong token', get(hash, 'Host: x\r\nAuthorization: Bearer not-a-token\r\n')],
      ['no token', get(hash, 'Host: x\r\n')],
      ['malformed Authorization', get(hash, 'Host: x\r\nAuthorization: Bearer\r\n')],
      ['%2e in the path', `GET /cache/cas/%2e%2e/${hash.slice(6)} HTTP/1.1\r\nHost: x\r\n\r\n`],
      ['an extra segment', `GET /cache/cas/${hash}/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`],
      ['a huge head', get(hash, `Host: x\r\nAuthorization: Bearer ${token}\r\nX-Pad: ${'p'.repeat(20_000)}\r\n`)],
      ['obs-fold', get(hash, `Host: x\r\nAuthorization: Bearer ${token}\r\nX-A: a\r\n b\r\n`)],
      ['bare LF', `GET /cache/cas/${hash} HTTP/1.1\nHost: x\nAuthorization: Bearer ${token}\n\n`],
      ['no Host', get(hash, `Authorization: Bearer ${token}\r\n`)],
      ['a read token on PUT', `PUT /cache/cas/${hash} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${readToken}\r\nContent-Length: 4096\r\n\r\n`],
    ];
    for (const [name, bytes] of hostile) {
      const before = raw.stats().answered;
      const answers = await bothAnswer([bytes + LAST]);
      assert.equal(raw.stats().answered, before, `${name}: not answered on the raw path`);
      assert.equal(answers.fast, answers.slow, name);
    }
    const nonAscii = Buffer.concat([Buffer.from(`GET /cache/cas/${hash} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nX-A: caf`), Buffer.from([0xc3, 0xa9]), Buffer.from(`\r\n\r\n${LAST}`)]);
    const answers = await bothAnswer([nonAscii]);
    assert.equal(answers.fast, answers.slow, 'non-ASCII header value');
    assert.equal(raw.stats().answered, 0);
    assert.deepEqual(statuses((await bothAnswer([hostile[0]![1] + LAST])).fast), [401, 404], 'the smuggled request (with a good token) is a body, never answered');
  });

  it('answers hits with exactly the bytes node:http sends, keeps the connection as HTTP/1.1 and 1.0 say, and HEAD has no body', async () => {
    const { data, hash } = await hotBlob();
    const cases: Array<[string, string[], number]> = [
      ['keep-alive then close', [get(hash), get(hash, `Host: x\r\nAuthorization: Bearer ${readToken}\r\nConnection: close\r\n`)], 2],
      ['HTTP/1.0 closes', [get(hash, `Authorization: Bearer ${token}\r\n`, 'GET', 'HTTP/1.0')], 1],
      ['HTTP/1.0 keep-alive', [get(hash, `Authorization: Bearer ${token}\r\nConnection: keep-alive\r\n`, 'GET', 'HTTP/1.0'), get(hash, `Host: x\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n`)], 2],
      ['HEAD', [get(hash, `Host: x\r\nAuthorization: Bearer ${token}\r\n`, 'HEAD'), get(hash, `Host: x\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n`, 'HEAD')], 2],
      ['Content-Length: 0 and odd-cased headers', [get(hash, `hOsT: x\r\nauthorization: bearer ${token}\r\ncontent-length: 0\r\nUser-Agent: bazel/7\r\nConnection: close\r\n`)], 1],
    ];
    for (const [name, parts, n] of cases) {
      const before = raw.stats().answered;
      const answers = await bothAnswer([parts.join('')]);
      assert.equal(answers.fast, answers.slow, name);
      assert.deepEqual(statuses(answers.fast), Array(n).fill(200), name);
      assert.equal(raw.stats().answered - before, n, `${name}: answered on the raw path`);
    }
    assert.deepEqual(parsed, [], 'node:http parsed none of them');
    // What a client sends after its own `Connection: close` is not read (node:http answers it 400).
    const closing = await exchange(fast, [get(hash, `Authorization: Bearer ${token}\r\n`, 'GET', 'HTTP/1.0') + get(hash) + get(hash)]);
    assert.deepEqual(statuses(closing), [200]);
    assert.ok((await exchange(fast, [get(hash, `Host: x\r\nConnection: close\r\n`.replace('Host', `Authorization: Bearer ${token}\r\nHost`))])).endsWith(data.toString('latin1')));
  });

  it('hands a pipelined mix over at the first request it does not answer, in order, and node:http answers the rest', async () => {
    const { hash, data: hotData } = await hotBlob();
    const put = blob(1000);
    const putHash = digestOf(put).hash;
    const bytes = [get(hash), `PUT /cache/cas/${putHash} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Length: ${put.length}\r\n\r\n${put.toString('latin1')}`, get(putHash), get(hash, `Host: x\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n`)].join('');
    const text = await exchange(fast, [bytes]);
    // node:http takes pipelined requests while the one before is still answered, so the GET of
    // the blob being PUT may come first: 200 or 404, but in its place.
    assert.deepEqual(statuses(text).filter((_, i) => i !== 2), [200, 200, 200]);
    assert.equal(raw.stats().answered, 1);
    assert.deepEqual(parsed, [`PUT /cache/cas/${putHash}`, `GET /cache/cas/${putHash}`, `GET /cache/cas/${hash}`]);
    assert.ok(text.endsWith(hotData.toString('latin1')));
    assert.equal(await disk.has({ hash: putHash, size: put.length }), true);
  });

  it('answers a head split across writes, and times out a half head (slowloris) with 408', async () => {
    const { hash } = await hotBlob();
    const whole = get(hash, `Host: x\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n`);
    const text = await exchange(fast, [whole.slice(0, 7), whole.slice(7, 90), whole.slice(90)]);
    assert.deepEqual(statuses(text), [200]);
    assert.equal(raw.stats().answered, 1);
    fast.server.headersTimeout = 200;
    const t0 = Date.now();
    const slowloris = await exchange(fast, [get(hash), whole.slice(0, 40)]);
    assert.deepEqual(statuses(slowloris), [200, 408]);
    assert.ok(Date.now() - t0 < 5000);
    await waitUntil(() => raw.stats().connections === 0);
  });

  it('never serves a corrupt blob or one the disk no longer holds, and counts what it serves as hits', async () => {
    const data = blob(4096);
    const { hash } = digestOf(data);
    await disk.putBuffer(data);
    await fsp.writeFile(disk.blobPath(hash), blob(4096));
    const corrupt = await exchange(fast, [get(hash), get(hash, `Host: x\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n`)]);
    assert.deepEqual(statuses(corrupt), [404, 404]);
    assert.equal(raw.stats().answered, 0);
    assert.equal(disk.stats().corruptionsDetected, 1);

    const hot = await hotBlob();
    const hits = disk.stats().hits;
    await exchange(fast, [get(hot.hash).repeat(3) + LAST]);
    assert.equal(raw.stats().answered, 3);
    assert.equal(disk.stats().hits - hits, 3, 'each raw answer is a hit of the store');
    assert.equal(await disk.delete(hot.hash), true);
    assert.deepEqual(statuses(await exchange(fast, [get(hot.hash) + LAST])), [404, 404]);
    assert.equal(raw.stats().answered, 3);
  });

  it('serves a 4 KiB hit, then a 1 MiB GET node:http answers, then hits: exact bytes, one request at a time and pipelined', async () => {
    const small = await hotBlob();
    const large = blob(1024 * 1024);
    const largeHash = (await disk.putBuffer(large)).digest.hash;
    const close = `Host: x\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n`;
    const sequence = [get(small.hash), get(largeHash), get(small.hash), get(largeHash), get(small.hash, close)];
    for (const [name, parts] of [['one at a time', sequence], ['pipelined', [sequence.join('')]], ['pipelined in odd pieces', [sequence.join('').slice(0, 100), sequence.join('').slice(100, 333), sequence.join('').slice(333)]]] as const) {
      // The 1 MiB blob, read through the memory tier, pushed the small one out (the tier holds 1 MiB).
      assert.ok(await tier.get(small.hash));
      const before = raw.stats();
      const got = answersIn(await exchange(fast, [...parts]));
      assert.deepEqual(got.map((a) => a.status), [200, 200, 200, 200, 200], name);
      assert.deepEqual(got.map((a) => a.body.length), [4096, large.length, 4096, large.length, 4096], name);
      for (const [i, want] of [small.data, large, small.data, large, small.data].entries()) assert.ok(got[i]!.body === want.toString('latin1'), `${name}: answer ${i} byte for byte`);
      assert.equal(raw.stats().answered - before.answered, 1, `${name}: the first hit on the raw path, the rest on node:http after the hand-over`);
      assert.equal(raw.stats().handedOver - before.handedOver, 1, name);
    }
  });

  it('answers an opaque /ac/ value byte for byte as the routes do, and never a result, a replaced or deleted value, a bad key or a refused token', async () => {
    const key = digestOf(Buffer.from('an action')).hash;
    const value = blob(2048);
    const put = (k: string, body: Buffer | string, t = token) => `PUT /cache/ac/${k} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.toString()}`;
    const ac = (k: string, headers = `Host: x\r\nAuthorization: Bearer ${token}\r\n`, method = 'GET') => `${method} /cache/ac/${k} HTTP/1.1\r\n${headers}\r\n`;
    assert.deepEqual(statuses(await exchange(slow, [put(key, value) + LAST])), [200, 404]);
    // The value's blob enters the memory tier at its first read, as any hit's does.
    assert.deepEqual(statuses(await exchange(slow, [ac(key) + LAST])), [200, 404]);

    const served = await bothAnswer([ac(key) + ac(key, `Host: x\r\nAuthorization: Bearer ${readToken}\r\n`, 'HEAD') + ac(key) + LAST]);
    assert.equal(served.fast, served.slow);
    assert.deepEqual(statuses(served.fast), [200, 200, 200, 404]);
    assert.ok(served.fast.includes(`\r\n\r\n${value.toString('latin1')}HTTP/1.1 200`), 'the value byte for byte');
    assert.equal(raw.stats().answered, 3, 'GET, HEAD and GET answered on the raw path');
    assert.deepEqual(parsed, ['GET /nothing']);

    const refused: Array<[string, string]> = [
      ['no token', ac(key, 'Host: x\r\n')],
      ['a wrong token', ac(key, 'Host: x\r\nAuthorization: Bearer nope\r\n')],
      ['upper-case key', ac(key.toUpperCase())],
      ['a key that is not hex', ac(`${key.slice(1)}z`)],
      ['a short key', ac(key.slice(2))],
      ['a Range header', ac(key, `Host: x\r\nAuthorization: Bearer ${token}\r\nRange: bytes=0-9\r\n`)],
      ['a key never stored', ac(digestOf(Buffer.from('other')).hash)],
    ];
    for (const [name, bytes] of refused) {
      const answers = await bothAnswer([bytes + LAST]);
      assert.equal(answers.fast, answers.slow, name);
    }
    // A Range header is harmless to node:http's routes (they ignore it), so the raw path may
    // answer it too; everything else above went to node:http.
    assert.ok(raw.stats().answered <= 5);

    // Replaced by another raw value, then by one of spillway's own results, then deleted: the
    // raw path answers what the routes answer at each step, never the older value.
    const second = blob(1024);
    // One exchange per request: node:http reads a pipelined GET while the PUT before it is still stored.
    const stored = async (body: Buffer | string) => {
      assert.deepEqual(statuses(await exchange(slow, [put(key, body) + LAST])), [200, 404]);
      assert.deepEqual(statuses(await exchange(slow, [ac(key) + LAST])), [200, 404]);
    };
    await stored(second);
    let now = await bothAnswer([ac(key) + LAST]);
    assert.equal(now.fast, now.slow, 'a replaced value');
    assert.ok(now.fast.includes(second.toString('latin1')));
    const result = JSON.stringify({ kind: 'spillway.action-result/v1', exitCode: 0, outputs: [], stdout: '', stderr: '' });
    const resultPut = await exchange(slow, [put(key, result) + LAST]);
    assert.deepEqual(statuses(resultPut), [200, 404], resultPut);
    now = await bothAnswer([ac(key) + LAST]);
    assert.equal(now.fast, now.slow, 'a result under the key');
    assert.match(now.fast, /content-type: application\/json/);
    await stored(value);
    const answered = raw.stats().answered;
    assert.deepEqual(statuses(await exchange(fast, [ac(key) + LAST])), [200, 404]);
    assert.equal(raw.stats().answered, answered + 1, 'a raw value again, on the raw path');
    assert.deepEqual(statuses(await exchange(slow, [`DELETE /cache/ac/${key} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n${LAST}`])), [200, 404]);
    now = await bothAnswer([ac(key) + LAST]);
    assert.equal(now.fast, now.slow, 'a deleted key');
    assert.deepEqual(statuses(now.fast), [404, 404]);
    // A value whose blob the store evicted is a miss, as on the routes.
    await stored(value);
    assert.equal(await disk.delete(digestOf(value).hash), true);
    now = await bothAnswer([ac(key) + LAST]);
    assert.equal(now.fast, now.slow, 'a value whose blob is gone');
    assert.deepEqual(statuses(now.fast), [404, 404]);
  });

  it('leaves hits above maxBlobBytes (64 KiB) to node:http', async () => {
    const big = await hotBlob(100 * 1024);
    const text = await exchange(fast, [get(big.hash) + LAST]);
    assert.deepEqual(statuses(text), [200, 404]);
    assert.ok(text.includes(big.data.toString('latin1')));
    assert.equal(raw.stats().answered, 0);
    assert.deepEqual(parsed, [`GET /cache/cas/${big.hash}`, 'GET /nothing']);
  });

  it('closes the connections it still holds when the server closes', async () => {
    const { hash } = await hotBlob();
    const text = exchange(fast, [get(hash)]);
    await waitUntil(() => raw.stats().answered === 1);
    assert.equal(raw.stats().connections, 1);
    await fast.close();
    assert.deepEqual(statuses(await text), [200]);
    assert.equal(raw.stats().connections, 0);
  });
});
