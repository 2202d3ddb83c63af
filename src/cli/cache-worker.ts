/**
 * A cache worker process (`cas.workers`): serves the cache connections the master hands it,
 * reading and writing the store's files itself and asking the master's {@link StoreHost} for
 * everything its index decides. Started by {@link CacheWorkers} with an IPC channel; it gets
 * its settings in the first message and exits when the master goes away.
 */
import Fastify from 'fastify';
import http from 'node:http';
import net, { type Socket } from 'node:net';
import { ActionCache, CasAuth, CasHotPath, MemoryTier, RawHitPath, RemoteStore, casRoutes, passSocket, withServerOptions, type BlobStore, type ToOwner } from '../cas';
import { createLogger, type Logger } from '../lib';
import { workerConnection, workerInit, type WorkerInit, type WorkerNotice } from './cache-worker-messages';

function send(message: ToOwner | WorkerNotice): void {
  if (process.connected) process.send?.(message);
}

/** Log lines go to the master, which writes them with its own logger, format and sinks. */
function ipcLogger(index: number): Logger {
  return createLogger({
    silent: true,
    sink: ({ level, event, ...fields }) => send({ t: 'log', level, event, fields: { ...fields, cacheWorker: index } }),
  });
}

async function serve(init: WorkerInit): Promise<void> {
  const log = ipcLogger(init.index);
  const store = new RemoteStore({
    root: init.storeRoot,
    channel: { send, onMessage: (listener) => process.on('message', (m, handle) => handle === undefined && listener(m)) },
  });
  const memory = init.memoryCacheBytes > 0 ? new MemoryTier({ inner: store, maxBytes: init.memoryCacheBytes, log }) : undefined;
  const blobs: BlobStore = memory ?? store;
  const actionCache = await ActionCache.open({ root: init.actionCacheRoot, store: blobs });
  const prefix = init.prefix ?? '';
  const hot = memory && new CasHotPath({ blobs: memory, auth: new CasAuth(init.auth), prefix });
  const isCache = (url: string | undefined) => url !== undefined && (url.startsWith(`${prefix}/cas/`) || url.startsWith(`${prefix}/ac/`));
  const worker = String(init.index);

  const app = Fastify({
    logger: false,
    bodyLimit: init.bodyLimitBytes,
    serverFactory: (handler, options) =>
      withServerOptions(
        http.createServer((req, res) => {
          res.setHeader('x-spillway-cache-worker', worker);
          if (hot?.handle(req, res)) return;
          if (isCache(req.url)) return handler(req, res);
          forward(req, res, init.master, log);
        }),
        options,
      ),
  });
  await app.register(casRoutes, { store: blobs, actionCache, maxBlobBytes: init.maxBlobBytes, log, auth: init.auth, ...(init.prefix && { prefix: init.prefix }) });
  await app.ready();
  if (memory && init.rawHits) new RawHitPath({ blobs: memory, actionValues: actionCache, auth: new CasAuth(init.auth), prefix, headers: { 'x-spillway-cache-worker': worker }, clock: { now: () => Date.now() } }).install(app.server);

  process.on('message', (m, handle) => {
    if (handle === undefined) return;
    const conn = workerConnection.safeParse(m);
    // The master sends the raw TCP handle (see CacheWorkers); the bytes it read go back in front.
    const socket = new net.Socket({ handle: handle as unknown as Socket, readable: true, writable: true } as net.SocketConstructorOpts);
    if (!conn.success) return socket.destroy();
    passSocket(app.server, [(s) => app.server.emit('connection', s)], socket, Buffer.from(conn.data.head, 'base64'));
  });
  const stop = (why: string) => {
    store.close(new Error(why));
    app.server.closeAllConnections();
    void app.close().finally(() => process.exit(0));
  };
  process.once('disconnect', () => stop('the master went away'));
  process.once('SIGTERM', () => stop('stopped'));
  send({ t: 'ready' });
}

/**
 * A request that is not the cache's, on a connection the master handed over because its
 * first request was: the master answers it, as it would have on a connection of its own.
 */
function forward(req: http.IncomingMessage, res: http.ServerResponse, master: WorkerInit['master'], log: Logger): void {
  const upstream = http.request({ host: master.host, port: master.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  upstream.on('error', (err) => {
    log.warn('cas.worker-forward-failed', { url: req.url, err: err.message });
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'SPILLWAY_E_INTERNAL', message: 'the master did not answer' } }));
    else res.destroy();
  });
  req.pipe(upstream);
}

process.once('message', (m) => {
  const init = workerInit.safeParse(m);
  if (!init.success) {
    process.stderr.write(`cache worker: bad init message: ${init.error.issues[0]?.message}\n`);
    process.exit(2);
  }
  serve(init.data).catch((err: unknown) => {
    process.stderr.write(`cache worker failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
});
