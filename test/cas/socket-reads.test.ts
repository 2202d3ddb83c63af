import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { passSocket, stopReads, takeConnectionListeners } from '../../src/cas';

/** One loopback connection: the server's socket (its first chunk already read) and the client's. */
async function pair(): Promise<{ server: net.Server; accepted: Socket; first: Buffer; client: Socket }> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
  const [accepted] = (await once(server, 'connection')) as [Socket];
  client.write('first');
  const [first] = (await once(accepted, 'data')) as [Buffer];
  return { server, accepted, first, client };
}

const written = (socket: Socket, bytes: string | Buffer) => new Promise<void>((r) => socket.write(bytes, () => r()));
/** Turns of the event loop, each with a poll phase in which a socket that still reads would read what arrived. */
async function pollTurns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

describe('cas socket reads (stopping a socket at its handle before it changes owner)', () => {
  it('reads nothing more into the stream after stopReads, where pause() alone goes on reading ahead', async () => {
    const paused = await pair();
    paused.accepted.pause();
    await written(paused.client, 'more bytes');
    await pollTurns(5);
    assert.ok(paused.accepted.readableLength > 0, 'pause() alone read ahead (the behaviour stopReads exists for)');

    const stopped = await pair();
    assert.equal(stopReads(stopped.accepted), true);
    await written(stopped.client, 'more bytes');
    await pollTurns(5);
    assert.equal(stopped.accepted.readableLength, 0, 'nothing read after stopReads');
    for (const p of [paused, stopped]) {
      p.client.destroy();
      p.accepted.destroy();
      p.server.close();
    }
  });

  it('passes a stopped socket to an owner that only listens for data, which then hears every later byte', async () => {
    const { server, accepted, first, client } = await pair();
    assert.equal(first.toString(), 'first');
    assert.equal(stopReads(accepted), true);
    const heard: string[] = [];
    const all = new Promise<void>((resolve) => {
      passSocket(new http.Server(), [(s) => s.on('data', (c: Buffer) => {
        heard.push(c.toString());
        if (heard.join('') === 'rest|later') resolve();
      })], accepted, Buffer.from('rest|'));
    });
    await written(client, 'later');
    await all;
    client.destroy();
    accepted.destroy();
    server.close();
  });

  it('passes a socket to node:http with the unread rest in front: every byte once, in order, pipelined requests included', async () => {
    const served: string[] = [];
    const server = http.createServer((req, res) => {
      served.push(req.url ?? '');
      // A large answer makes node:http pause and resume the socket for back-pressure while the next request waits.
      res.end(Buffer.alloc(req.url === '/big' ? 1024 * 1024 : 10, 0x61));
    });
    const serve = takeConnectionListeners(server);
    let passed = 0;
    server.on('connection', (socket: Socket) => {
      socket.once('data', (chunk: Buffer) => {
        // The first request's first 7 bytes are "ours"; the rest goes back to node:http.
        stopReads(socket);
        passed++;
        passSocket(server, serve, socket, chunk.subarray(7));
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
    let received = 0;
    client.on('data', (c: Buffer) => (received += c.length));
    const closed = once(client, 'close');
    const req = (url: string, close = false) => `GET ${url} HTTP/1.1\r\nHost: x\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;
    await written(client, `JUNK-7!${req('/a')}${req('/big')}${req('/b')}`);
    await written(client, `${req('/big')}${req('/c', true)}`);
    await closed;
    assert.equal(passed, 1);
    assert.deepEqual(served, ['/a', '/big', '/b', '/big', '/c']);
    assert.ok(received > 2 * 1024 * 1024);
    server.close();
  });
});
