/**
 * The Node ceiling of bench/cache-vs-nginx.ts: a bare server that answers every request with
 * the same 4 KiB buffer (no routing, no store, no logging), in one process or in N processes
 * sharing one port through node:cluster. Whatever spillway does per hit costs on top of this,
 * so it tells how far a single Node process (or two) can get on this machine.
 *
 * `http` is node:http; `net` is a bare node:net server writing one prebuilt header+body buffer
 * per request head it sees (it counts `\r\n\r\n`, nothing more): the ceiling of answering hits
 * without node:http's per-request IncomingMessage/ServerResponse objects.
 *
 *   node dist/bench/cache-anchor.js PORT [PROCESSES] [http|net]
 *
 * Prints `listening http://127.0.0.1:<port>` once every process accepts requests. Stops on
 * SIGTERM/SIGINT (the primary takes its workers with it: a worker exits when its IPC channel to
 * the primary closes), and on its own if the bench that started it goes away.
 */
import cluster from 'node:cluster';
import http from 'node:http';

import net from 'node:net';

const BODY = Buffer.alloc(4096, 'x');
const RESPONSE = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${BODY.length}\r\nkeep-alive: timeout=60\r\n\r\n`, 'latin1'), BODY]);
const HEAD_END = Buffer.from('\r\n\r\n');

function serveHttp(port: number, onListening: () => void): void {
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BODY.length });
    res.end(BODY);
  });
  server.listen(port, '127.0.0.1', onListening);
}

function serveNet(port: number, onListening: () => void): void {
  const server = net.createServer({ noDelay: true }, (socket) => {
    let pending: Buffer = Buffer.alloc(0);
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let at = 0;
      for (let end = pending.indexOf(HEAD_END, at); end >= 0; end = pending.indexOf(HEAD_END, at)) {
        socket.write(RESPONSE);
        at = end + 4;
      }
      pending = at === pending.length ? Buffer.alloc(0) : pending.subarray(at);
    });
  });
  server.listen(port, '127.0.0.1', onListening);
}

function main(): void {
  const port = Number(process.argv[2]);
  const processes = Number(process.argv[3] ?? 1);
  const kind = process.argv[4] ?? 'http';
  if (!Number.isInteger(port) || port <= 0 || !Number.isInteger(processes) || processes < 1 || (kind !== 'http' && kind !== 'net')) {
    throw new Error('usage: cache-anchor PORT [PROCESSES] [http|net]');
  }
  const serve = kind === 'net' ? serveNet : serveHttp;
  const ready = (): void => {
    process.stdout.write(`listening http://127.0.0.1:${port}\n`);
  };
  let stopping = false;
  const parent = process.ppid;
  // Orphaned (the bench was SIGKILLed): reparented, so stop rather than linger.
  setInterval(() => {
    if (process.ppid !== parent) process.exit(2);
  }, 500).unref();

  if (processes === 1) {
    serve(port, ready);
  } else if (cluster.isPrimary) {
    let listening = 0;
    for (let i = 0; i < processes; i++) cluster.fork();
    cluster.on('listening', () => {
      if (++listening === processes) ready();
    });
    cluster.on('exit', (w, code, signal) => {
      if (!stopping) {
        process.stderr.write(`cache-anchor: worker ${w.process.pid} exited (${code ?? signal})\n`);
        process.exit(1);
      }
    });
  } else {
    serve(port, () => undefined);
    return;
  }
  const stop = (): void => {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM');
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main();
