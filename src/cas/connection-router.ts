import type http from 'node:http';
import type { Socket } from 'node:net';
import { passSocket, stopReads, takeConnectionListeners } from './socket-reads';

/** Where a cache connection can be sent; false when that worker cannot take it now. */
export interface ConnectionTarget {
  take(socket: Socket, head: Buffer): boolean;
}

/** Options of {@link CacheConnectionRouter}. */
export interface CacheConnectionRouterOptions {
  /** The cache routes' prefix, e.g. `/cache`. @defaultValue '' */
  prefix?: string;
  /** The next worker to try, in turn; none means the master serves the connection itself. */
  targets: () => readonly ConnectionTarget[];
  /** A connection that has not sent its request line by then is closed. @defaultValue 30 000 */
  requestLineTimeoutMs?: number;
}

/** A request line longer than this is not a cache request (ours are under 200 bytes). */
const PEEK_MAX_BYTES = 8192;

/**
 * Sends connections whose first request is a cache request (`{prefix}/cas/...`,
 * `{prefix}/ac/...`) to cache worker processes, so the cache uses more than the master's one
 * core, while every other connection is served by the master as before. Cache clients (Bazel,
 * ccache, agents) keep a connection for cache requests only; a worker forwards anything else
 * it is asked on one to the master, so a mixed connection still gets right answers.
 *
 * It takes the place of the HTTP server's own `connection` listener: it reads up to the end
 * of the first request line, then either hands the socket and the bytes read to a worker, or
 * puts the bytes back and gives the socket to the HTTP server.
 */
export class CacheConnectionRouter {
  private readonly cachePaths: string[];
  private turn = 0;

  constructor(private readonly opts: CacheConnectionRouterOptions) {
    const prefix = opts.prefix ?? '';
    this.cachePaths = [`${prefix}/cas/`, `${prefix}/ac/`];
  }

  install(server: http.Server): void {
    const serve = takeConnectionListeners(server);
    const local = (socket: Socket, head: Buffer) => passSocket(server, serve, socket, head);
    server.on('connection', (socket: Socket) => this.route(socket, local));
  }

  private route(socket: Socket, local: (socket: Socket, head: Buffer) => void): void {
    let head: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), this.opts.requestLineTimeoutMs ?? 30_000);
    const done = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onGone);
      socket.off('close', onGone);
    };
    const onGone = () => done();
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const lineEnd = head.indexOf('\r\n');
      if (lineEnd < 0 && head.length < PEEK_MAX_BYTES) return;
      done();
      // A paused socket still reads ahead into its buffer, and a handle sent to another process
      // drops whatever it reads after that (a PUT's body, a pipelined request): stop the reads
      // at the handle, in this callback, so the bytes read so far are exactly `head`.
      const handOver = lineEnd >= 0 && lineEnd < PEEK_MAX_BYTES && this.isCacheRequest(head.subarray(0, lineEnd).toString('latin1')) && stopReads(socket) && socket.readableLength === 0;
      if (!handOver || !this.toWorker(socket, head)) local(socket, head);
    };
    socket.on('data', onData);
    socket.on('error', onGone);
    socket.on('close', onGone);
  }

  private isCacheRequest(line: string): boolean {
    const target = line.split(' ')[1] ?? '';
    return this.cachePaths.some((p) => target.startsWith(p));
  }

  private toWorker(socket: Socket, head: Buffer): boolean {
    const targets = this.opts.targets();
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(this.turn + i) % targets.length]!;
      if (t.take(socket, head)) {
        this.turn = (this.turn + i + 1) % targets.length;
        return true;
      }
    }
    return false;
  }
}
