import { strict as assert } from 'node:assert';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fetchInstanceId, ImdsError } from '../../src/slave-agent/imds';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A stand-in for IMDSv2 on port 0 that, like the real one, refuses metadata without a token. */
function imdsv2(instanceId: string): { handler: Handler; seen: { method: string; url: string; headers: IncomingMessage['headers'] }[] } {
  const seen: { method: string; url: string; headers: IncomingMessage['headers'] }[] = [];
  const issued = new Set<string>();
  const handler: Handler = (req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (req.url === '/latest/api/token') {
      if (req.method !== 'PUT') return void res.writeHead(405).end();
      const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
      if (!(ttl >= 1 && ttl <= 21_600)) return void res.writeHead(400).end();
      const token = `tok-${issued.size + 1}`;
      issued.add(token);
      return void res.writeHead(200, { 'content-type': 'text/plain' }).end(token);
    }
    if (req.url === '/latest/meta-data/instance-id' && req.method === 'GET') {
      const token = req.headers['x-aws-ec2-metadata-token'];
      if (typeof token !== 'string' || !issued.has(token)) return void res.writeHead(401).end();
      return void res.writeHead(200, { 'content-type': 'text/plain' }).end(instanceId);
    }
    res.writeHead(404).end();
  };
  return { handler, seen };
}

async function listen(handler: Handler): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

async function imdsRejection(p: Promise<unknown>): Promise<ImdsError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ImdsError, `expected an ImdsError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

describe('slave-agent/imds', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map(close));
  });

  it('asks IMDSv2 for a session token, then for the instance id with it', async () => {
    const fake = imdsv2('i-0abc1234def567890');
    const { server, url } = await listen(fake.handler);
    servers.push(server);
    assert.equal(await fetchInstanceId({ baseUrl: `${url}/` }), 'i-0abc1234def567890');
    assert.deepEqual(
      fake.seen.map((r) => [r.method, r.url]),
      [
        ['PUT', '/latest/api/token'],
        ['GET', '/latest/meta-data/instance-id'],
      ],
    );
    assert.equal(fake.seen[0]?.headers['x-aws-ec2-metadata-token-ttl-seconds'], '21600');
    assert.equal(fake.seen[1]?.headers['x-aws-ec2-metadata-token'], 'tok-1');
  });

  it('a refused token is a clear, fatal error with the status', async () => {
    const { server, url } = await listen((_req, res) => void res.writeHead(403).end());
    servers.push(server);
    const err = await imdsRejection(fetchInstanceId({ baseUrl: url }));
    assert.equal(err.status, 403);
    assert.equal(err.disposition, 'fatal');
    assert.equal(err.code, 'SPILLWAY_E_IMDS');
    assert.match(err.message, /refused the session token: HTTP 403/);
  });

  it('a throttled IMDS (429) is retryable', async () => {
    const { server, url } = await listen((_req, res) => void res.writeHead(429).end());
    servers.push(server);
    assert.equal((await imdsRejection(fetchInstanceId({ baseUrl: url }))).disposition, 'retry');
  });

  it('says "not running on EC2" when nothing listens', async () => {
    const { server, url } = await listen(() => undefined);
    await close(server);
    const err = await imdsRejection(fetchInstanceId({ baseUrl: url, timeoutMs: 2000 }));
    assert.equal(err.status, undefined);
    assert.match(err.message, /cannot reach the EC2 instance metadata service .* not running on EC2/);
  });

  it('gives up after the short timeout when IMDS never answers', async () => {
    const { server, url } = await listen(() => undefined);
    servers.push(server);
    const started = Date.now();
    const err = await imdsRejection(fetchInstanceId({ baseUrl: url, timeoutMs: 150 }));
    assert.match(err.message, /no answer within 150 ms/);
    assert.ok(Date.now() - started < 5000);
  });

  it("rejects with the caller's abort reason when the caller aborts", async () => {
    const { server, url } = await listen(() => undefined);
    servers.push(server);
    const ac = new AbortController();
    const p = fetchInstanceId({ baseUrl: url, signal: ac.signal, timeoutMs: 10_000 });
    ac.abort(new Error('agent stopping'));
    await assert.rejects(p, /agent stopping/);
  });

  it('rejects an answer that is not an instance id', async () => {
    const { server, url } = await listen((req, res) => void res.writeHead(200).end(req.method === 'PUT' ? 'tok' : '<html>captive portal</html>'));
    servers.push(server);
    assert.match((await imdsRejection(fetchInstanceId({ baseUrl: url }))).message, /unexpected instance id/);
  });
});
