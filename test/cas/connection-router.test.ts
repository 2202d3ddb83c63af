import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { CacheConnectionRouter, type ConnectionTarget } from '../../src/cas';

/** A target that records what it was handed and answers on the socket itself, as a worker would. */
class RecordingTarget implements ConnectionTarget {
  readonly heads: string[] = [];
  constructor(private readonly accept = true) {}
  take(socket: Socket, head: Buffer): boolean {
    if (!this.accept) return false;
    this.heads.push(head.toString('latin1'));
    socket.end('HTTP/1.1 200 OK\r\nx-by: worker\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    return true;
  }
}

describe('cas CacheConnectionRouter', () => {
  let server: http.Server;
  let port: number;
  let targets: ConnectionTarget[];

  beforeEach(async () => {
    targets = [];
    server = http.createServer((req, res) => {
      res.setHeader('connection', 'close');
      res.end(`local ${req.method} ${req.url}`);
    });
    new CacheConnectionRouter({ prefix: '/cache', targets: () => targets, requestLineTimeoutMs: 200 }).install(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  /** Writes `parts` one after another on a new connection; resolves with all it got back. */
  async function exchange(parts: string[]): Promise<string> {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    const closed = new Promise((r) => socket.once('close', r));
    for (const p of parts) await new Promise<void>((r) => socket.write(p, () => r()));
    await closed;
    return text;
  }

  it('hands a cache connection to the next target with every byte read so far, in turn', async () => {
    const a = new RecordingTarget();
    const b = new RecordingTarget();
    targets = [a, b];
    const req = 'PUT /cache/cas/00 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello';
    assert.match(await exchange([req]), /x-by: worker/);
    assert.match(await exchange(['GET /cache/ac/11 HTTP/1.1\r\n', 'Host: x\r\n\r\n']), /x-by: worker/);
    assert.equal(a.heads[0], req);
    assert.match(b.heads[0]!, /^GET \/cache\/ac\/11 HTTP\/1\.1\r\n/);
  });

  it('serves locally what is not the cache\'s, a request line split across writes, and when no target takes it', async () => {
    targets = [new RecordingTarget(false)];
    assert.match(await exchange(['GET /cache/cas/00 HTTP/1.1\r\nHost: x\r\n\r\n']), /local GET \/cache\/cas\/00/);
    targets = [new RecordingTarget()];
    assert.match(await exchange(['GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n']), /local GET \/api\/x/);
    assert.match(await exchange(['GET /cas/00 HTTP/1.1\r\nHost: x\r\n\r\n']), /local GET \/cas\/00/, 'outside the prefix');
    assert.match(await exchange(['GE', 'T /api/y HT', 'TP/1.1\r\nHost: x\r\n\r\n']), /local GET \/api\/y/);
  });

  it('closes a connection that sends no request line in time, and never buffers more than a line\'s worth', async () => {
    assert.equal(await exchange([]), '', 'closed by the router, nothing answered');
    targets = [new RecordingTarget()];
    // Past 8 KiB without a line end it is not a cache request: the HTTP server gets it as it is.
    const path = `/cache/cas/${'a'.repeat(9000)}`;
    assert.match(await exchange([`GET ${path}`, ` HTTP/1.1\r\nHost: x\r\n\r\n`]), new RegExp(`local GET ${path}`));
  });
});
