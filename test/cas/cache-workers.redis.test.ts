import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, promises as fsp, readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TestFarm, farmConfigRaw } from '../helpers/farm';

const TOKEN = 'cache-workers-test-cas-token';
import { waitUntil } from '../helpers/wait-until';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const auth = { authorization: `Bearer ${TOKEN}` };

interface Answer {
  status: number;
  worker: string | undefined;
  body: Buffer;
}

/** One request on a connection of its own, so the router decides afresh each time. */
function request(base: string, method: string, urlPath: string, body?: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${urlPath}`, { method, agent: false, headers: { ...auth, ...(body && { 'content-length': body.length }) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, worker: res.headers['x-spillway-cache-worker'] as string | undefined, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Several requests written on one raw socket, answered in order (HTTP/1.1 keep-alive). */
async function onOneConnection(port: number, requests: Array<string | Buffer>): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  let text = '';
  socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
  const closed = new Promise((r) => socket.once('close', r));
  for (const r of requests) socket.write(r);
  await closed;
  return text;
}

/** The answers to GETs on one connection, split by their content-length. */
function answersIn(text: string): Array<{ status: number; body: Buffer }> {
  const bytes = Buffer.from(text, 'latin1');
  const out: Array<{ status: number; body: Buffer }> = [];
  let at = 0;
  while (at < bytes.length) {
    const end = bytes.indexOf('\r\n\r\n', at);
    assert.ok(end > 0, `a whole head at ${at}`);
    const head = bytes.subarray(at, end).toString('latin1');
    const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
    out.push({ status: Number(head.slice(9, 12)), body: bytes.subarray(end + 4, end + 4 + length) });
    at = end + 4 + length;
  }
  return out;
}

/** The whole answers at the start of `bytes` (a partial last one left out), as latin1 text. */
function completeOnly(bytes: Buffer): string {
  let at = 0;
  for (;;) {
    const end = bytes.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const length = Number(/\r\ncontent-length: (\d+)/i.exec(bytes.subarray(at, end).toString('latin1'))?.[1] ?? 0);
    if (bytes.length < end + 4 + length) break;
    at = end + 4 + length;
  }
  return bytes.subarray(0, at).toString('latin1');
}

/** The cache worker processes this test process started (the daemon runs in-process). */
function workerPids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        return ppid === process.pid && readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('cache-worker');
      } catch {
        return false;
      }
    })
    .map(Number);
}

// Both ways of answering hits: node:http only, and the raw hit path in the master and the workers.
for (const rawHits of [false, true]) describe(`cas.workers: cache connections served by worker processes on the master's one store (rawHits ${rawHits})`, function () {
  this.timeout(60_000);
  let farm: TestFarm;
  let dir: string;
  let base: string;
  let port: number;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'spillway-cache-workers-'));
    farm = await new TestFarm(farmConfigRaw({ cas: { dir: path.join(dir, 'cas'), prefix: '/cache', tokens: [TOKEN], workers: 2, rawHits } })).start();
    base = farm.addr.httpUrl;
    port = Number(new URL(base).port);
  });
  after(async () => {
    await farm?.stop();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('stores and serves through the workers what the master sees, and the other way round', async () => {
    const small = randomBytes(4096);
    const large = randomBytes(3 * 1024 * 1024 + 17);
    const seen = new Set<string | undefined>();
    for (const blob of [small, large]) {
      const put = await request(base, 'PUT', `/cache/cas/${sha(blob)}`, blob);
      assert.equal(put.status, 200);
      seen.add(put.worker);
      for (let i = 0; i < 3; i++) {
        const got = await request(base, 'GET', `/cache/cas/${sha(blob)}`);
        assert.equal(got.status, 200);
        assert.ok(got.body.equals(blob), 'byte for byte');
        seen.add(got.worker);
      }
    }
    assert.deepEqual([...seen].sort(), ['0', '1'], 'both workers served, and nothing was served by the master');
    const head = await request(base, 'HEAD', `/cache/cas/${sha(large)}`);
    assert.equal(head.status, 200);
    const wrong = await request(base, 'PUT', `/cache/cas/${sha(small)}`, randomBytes(10));
    assert.equal(wrong.status, 400, 'a body that does not hash to its key is refused by the worker too');
    // Opaque /ac/ values stay byte for byte.
    const acValue = Buffer.from('{"not":"ours","extra":[1,2,3]}');
    const acKey = sha(Buffer.from('an action'));
    assert.equal((await request(base, 'PUT', `/cache/ac/${acKey}`, acValue)).status, 200);
    assert.ok((await request(base, 'GET', `/cache/ac/${acKey}`)).body.equals(acValue));
    // The master's own routes on a connection that started with an API request see the same store.
    const text = await onOneConnection(port, [
      'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
      `HEAD /cache/cas/${sha(small)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`,
    ]);
    assert.match(text, /^HTTP\/1\.1 200[^]*HTTP\/1\.1 200 OK\r\n(?![^]*x-spillway-cache-worker)[^]*content-length: 4096/);
  });

  it('serves a 4 KiB hit, a 1 MiB GET and hits again on one connection, /ac/ values too: exact bytes, one at a time and pipelined', async () => {
    const small = randomBytes(4096);
    const large = randomBytes(1024 * 1024);
    const acValue = randomBytes(300);
    const acKey = sha(Buffer.from('a raw action'));
    for (const b of [small, large]) assert.equal((await request(base, 'PUT', `/cache/cas/${sha(b)}`, b)).status, 200);
    assert.equal((await request(base, 'PUT', `/cache/ac/${acKey}`, acValue)).status, 200);
    const get = (p: string, close = false) => `GET /cache/${p} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;
    const sequence = [get(`ac/${acKey}`), get(`cas/${sha(small)}`), get(`cas/${sha(large)}`), get(`cas/${sha(small)}`), get(`ac/${acKey}`), get(`cas/${sha(large)}`), get(`cas/${sha(small)}`, true)];
    const want = [acValue, small, large, small, acValue, large, small];
    for (let round = 0; round < 3; round++) {
      for (const pipelined of [false, true]) {
        let text: string;
        if (pipelined) text = await onOneConnection(port, [sequence.join('')]);
        else {
          // One request at a time: each written once the answer before it has arrived.
          const socket = net.connect(port, '127.0.0.1');
          let got = Buffer.alloc(0);
          const closed = new Promise((r) => socket.once('close', r));
          let sent = 0;
          const next = () => socket.write(sequence[sent++]!);
          socket.on('data', (c: Buffer) => {
            got = Buffer.concat([got, c]);
            if (sent < sequence.length && answersIn(completeOnly(got)).length === sent) next();
          });
          next();
          await closed;
          text = got.toString('latin1');
        }
        const answers = answersIn(text);
        assert.deepEqual(answers.map((a) => a.status), want.map(() => 200), `round ${round}, pipelined ${pipelined}`);
        for (const [i, w] of want.entries()) assert.ok(answers[i]!.body.equals(w), `round ${round}, pipelined ${pipelined}: answer ${i} byte for byte`);
      }
    }
  });

  it('loses no byte of uploads arriving on many connections at once (each worker takes several)', async () => {
    // Regression: a connection handed over while its worker was busy lost a 64 KiB chunk of its
    // PUT body, read ahead by the master's copy of the socket, and the upload hung.
    const client = async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const blobs = Array.from({ length: 4 }, () => randomBytes(1024 * 1024 + 3));
      const call = (method: string, blob: Buffer) =>
        new Promise<Answer>((resolve, reject) => {
          const req = http.request(`${base}/cache/cas/${sha(blob)}`, { method, agent, headers: { ...auth, ...(method === 'PUT' && { 'content-length': blob.length }) } }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, worker: res.headers['x-spillway-cache-worker'] as string | undefined, body: Buffer.concat(chunks) }));
          });
          req.on('error', reject);
          req.end(method === 'PUT' ? blob : undefined);
        });
      for (const b of blobs) assert.equal((await call('PUT', b)).status, 200);
      for (const b of blobs) assert.ok((await call('GET', b)).body.equals(b));
      agent.destroy();
    };
    await Promise.all(Array.from({ length: 8 }, client));
  });

  it('answers a request that is not the cache\'s on a worker\'s connection by asking the master', async () => {
    const blob = randomBytes(100);
    assert.equal((await request(base, 'PUT', `/cache/cas/${sha(blob)}`, blob)).status, 200);
    const text = await onOneConnection(port, [
      `GET /cache/cas/${sha(blob)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`,
      'GET /api/queues HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    ]);
    const answers = text.split(/(?=HTTP\/1\.1 )/);
    assert.equal(answers.length, 2, text);
    assert.match(answers[0]!, /^HTTP\/1\.1 200 OK/);
    assert.match(answers[1]!, /^HTTP\/1\.1 200 OK[^]*"queues":\[/);
  });

  it('drops from every worker\'s memory a blob the store no longer holds', async () => {
    const blob = randomBytes(2048);
    const hash = sha(blob);
    assert.equal((await request(base, 'PUT', `/cache/cas/${hash}`, blob)).status, 200);
    const workers = new Set<string | undefined>();
    while (workers.size < 2) {
      const got = await request(base, 'GET', `/cache/cas/${hash}`);
      assert.equal(got.status, 200);
      workers.add(got.worker);
    }
    // Deleted by the master's own routes (a connection that started with an API request).
    const text = await onOneConnection(port, ['GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', `DELETE /cache/cas/${hash} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`]);
    assert.equal(text.match(/HTTP\/1\.1 200/g)?.length, 2, text);
    // The workers hear of it in a message; until then a worker's memory could still vouch for it.
    await waitUntil(async () => (await Promise.all([1, 2, 3, 4].map(() => request(base, 'GET', `/cache/cas/${hash}`)))).every((a) => a.status === 404), { what: 'every worker answering 404' });
  });

  it('removes for everyone a blob a worker finds corrupt, and never serves it', async () => {
    const blob = randomBytes(5000);
    const hash = sha(blob);
    // Stored through the master's own routes, so no worker has read (or verified) it yet.
    await onOneConnection(port, [
      'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
      `PUT /cache/cas/${hash} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: ${blob.length}\r\nConnection: close\r\n\r\n`,
      blob,
    ]);
    const file = path.join(dir, 'cas', 'cas', hash.slice(0, 2), hash);
    const bad = Buffer.from(blob);
    bad[100] ^= 0xff;
    await fsp.writeFile(file, bad);
    const got = await request(base, 'GET', `/cache/cas/${hash}`);
    assert.equal(got.status, 404);
    assert.ok(got.worker !== undefined);
    await farm.logs.waitFor((e) => e.event === 'cas.corrupt-blob' && e.hash === hash);
    assert.equal((await request(base, 'HEAD', `/cache/cas/${hash}`)).status, 404);
    await assert.rejects(fsp.stat(file), /ENOENT/);
  });

  it('serves the cache itself while workers are gone, and starts them again', async () => {
    const blob = randomBytes(300);
    assert.equal((await request(base, 'PUT', `/cache/cas/${sha(blob)}`, blob)).status, 200);
    const before = farm.logs.entries.filter((e) => e.event === 'cas.worker-started').length;
    const pids = workerPids();
    assert.equal(pids.length, 2, 'two worker processes');
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    await waitUntil(() => farm.logs.entries.filter((e) => e.event === 'cas.worker-exited').length >= 2, { what: 'both exits noticed' });
    const meanwhile = await request(base, 'GET', `/cache/cas/${sha(blob)}`);
    assert.equal(meanwhile.status, 200);
    assert.equal(meanwhile.worker, undefined, 'served by the master');
    await waitUntil(() => farm.logs.entries.filter((e) => e.event === 'cas.worker-started').length >= before + 2, { what: 'both workers back', timeoutMs: 15_000 });
    const after = await request(base, 'GET', `/cache/cas/${sha(blob)}`);
    assert.equal(after.status, 200);
    assert.ok(after.worker !== undefined);
  });
});
