/**
 * The Node ceiling of bench/cache-vs-nginx.ts: a bare node:http server that answers every
 * request with the same 4 KiB buffer (no routing, no store, no logging), in one process or in
 * N processes sharing one port through node:cluster. Whatever spillway does per hit costs on top
 * of this, so it tells how far a single Node process (or two) can get on this machine.
 *
 *   node dist/bench/cache-anchor.js PORT [PROCESSES]
 *
 * Prints `listening http://127.0.0.1:<port>` once every process accepts requests. Stops on
 * SIGTERM/SIGINT (the primary takes its workers with it: a worker exits when its IPC channel to
 * the primary closes), and on its own if the bench that started it goes away.
 */
import cluster from 'node:cluster';
import http from 'node:http';

const BODY = Buffer.alloc(4096, 'x');

function serve(port: number, onListening: () => void): void {
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BODY.length });
    res.end(BODY);
  });
  server.listen(port, '127.0.0.1', onListening);
}

function main(): void {
  const port = Number(process.argv[2]);
  const processes = Number(process.argv[3] ?? 1);
  if (!Number.isInteger(port) || port <= 0 || !Number.isInteger(processes) || processes < 1) {
    throw new Error('usage: cache-anchor PORT [PROCESSES]');
  }
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
