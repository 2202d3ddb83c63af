import type http from 'node:http';
import type { Socket } from 'node:net';
import type { Clock } from '../lib';
import type { Digest } from './digest';
import { parseHitRequest, type HitRequest } from './hit-request';
import type { HotBlobs } from './hot-path';
import type { CasAuth } from './http-auth';
import { passSocket, stopReads, takeConnectionListeners } from './socket-reads';

/** Options of {@link RawHitPath}. */
export interface RawHitPathOptions {
  blobs: HotBlobs;
  /**
   * Where `GET|HEAD {prefix}/ac/<key>` finds the digest of an opaque value (the action cache's
   * `peekRaw`); without it every `/ac/` request goes to node:http. @defaultValue none
   */
  actionValues?: HotActionValues;
  auth: CasAuth;
  /** The cache routes' prefix, e.g. `/cache`. @defaultValue '' */
  prefix?: string;
  /** Headers every answer carries besides its own, as the node:http server adds them to all of its. */
  headers?: Readonly<Record<string, string>>;
  /** For the `Date` header. */
  clock: Pick<Clock, 'now'>;
  /**
   * Largest blob answered here; bigger hits go to node:http. Measured in bench:cache (1 MiB
   * GETs from the cache workers were 3-5x slower written here than by node:http, for a reason
   * not yet found), and a small hit is where node:http's per-request cost matters.
   * @defaultValue 64 KiB
   */
  maxBlobBytes?: number;
}

/** The action cache as the raw path reads it: an opaque value's digest, known without I/O that waits. */
export interface HotActionValues {
  peekRaw(key: string): Digest | undefined;
}

/** Counters of {@link RawHitPath}. */
export interface RawHitPathStats {
  answered: number;
  handedOver: number;
  connections: number;
}

/** One blob size's response heads, for the second their Date header names. */
type Heads = { second: number; keepAliveSec: number; keepAlive: Buffer; close: Buffer };

/** Distinct blob sizes whose response heads are kept; past it the cache starts again. */
const MAX_CACHED_HEADS = 1024;
const DEFAULT_MAX_BLOB_BYTES = 64 * 1024;
const TIMEOUT_408 = Buffer.from('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n', 'latin1');

/**
 * Answers cache hits straight from a connection's bytes, without node:http: a hit of the memory
 * tier costs a parse of a few hundred bytes and one write, where node:http's per-request objects
 * cost more than the rest of the hit together (bench/cache-vs-nginx.ts: node:http in 2
 * processes reaches about 0.65x of nginx, a bare node:net server 1.1x).
 *
 * It takes the place of the HTTP server's `connection` listener and reads each connection
 * itself while every request on it is a hit it may answer (see {@link parseHitRequest}: a
 * strictly formed `GET|HEAD {prefix}/cas/<sha256>` or `{prefix}/ac/<key>` with no body, a read
 * token that {@link CasAuth} accepts, a blob the memory tier holds, for `/ac/` an opaque value
 * that {@link HotActionValues} names and no result shadows). At the first request that is anything
 * else (a miss, a write, a refusal, a header it does not know to be harmless) it hands the
 * connection for good to the HTTP server, with that request's bytes put back in front, so
 * node:http and the routes answer it, and every later request, exactly as without this path.
 */
export class RawHitPath {
  private readonly prefix: string;
  private readonly heads = new Map<number, Heads>();
  private readonly sockets = new Set<Socket>();
  private readonly extra: string;
  private readonly maxBlobBytes: number;
  private readonly counters = { answered: 0, handedOver: 0 };

  constructor(private readonly opts: RawHitPathOptions) {
    this.prefix = opts.prefix ?? '';
    this.maxBlobBytes = opts.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES;
    this.extra = Object.entries(opts.headers ?? {})
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
  }

  /** Puts this path in front of `server`'s own connection handling. */
  install(server: http.Server): void {
    const serve = takeConnectionListeners(server);
    const toHttp = (socket: Socket, rest: Buffer) => passSocket(server, serve, socket, rest);
    server.on('connection', (socket: Socket) => this.serve(socket, server, toHttp));
    // The server closes only the connections it knows; the ones still read here are this path's to close.
    const closeIdle = server.closeIdleConnections.bind(server);
    const closeAll = server.closeAllConnections.bind(server);
    server.closeIdleConnections = () => {
      closeIdle();
      this.closeAll();
    };
    server.closeAllConnections = () => {
      closeAll();
      this.closeAll();
    };
  }

  /** Requests answered here, connections handed to node:http, connections still read here. */
  stats(): RawHitPathStats {
    return { ...this.counters, connections: this.sockets.size };
  }

  private closeAll(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  private serve(socket: Socket, server: http.Server, toHttp: (socket: Socket, rest: Buffer) => void): void {
    let pending: Buffer | undefined;
    let headTimer: NodeJS.Timeout | undefined;
    // The verdict for the last Authorization value seen on this connection: tokens do not change
    // while the server runs, and a client repeats its own header on every request.
    let lastAuthorization: string | undefined;
    let lastVerdict: boolean | undefined;
    const keepAliveSec = Math.floor(server.keepAliveTimeout / 1000);

    const detach = () => {
      clearTimeout(headTimer);
      headTimer = undefined;
      socket.off('data', onData);
      socket.off('timeout', onIdle);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.setTimeout(0);
      this.sockets.delete(socket);
    };
    const handOver = (rest: Buffer) => {
      this.counters.handedOver++;
      // Before anything else: a read landing between here and node:http's consume would reach neither.
      stopReads(socket);
      detach();
      toHttp(socket, rest);
    };
    const mayRead = (r: HitRequest): boolean => {
      if (r.authorization !== lastAuthorization || lastVerdict === undefined) {
        lastAuthorization = r.authorization;
        lastVerdict = this.opts.auth.check(r.authorization, 'read').ok;
      }
      return lastVerdict;
    };
    const run = (buf: Buffer, from: number): void => {
      let at = from;
      while (at < buf.length) {
        const r = parseHitRequest(buf, at, this.prefix);
        if (r.kind === 'incomplete') {
          pending = buf.subarray(at);
          // A head that trickles in (slowloris) gets node:http's headersTimeout, counted from its first bytes.
          headTimer ??= setTimeout(() => {
            detach();
            socket.end(TIMEOUT_408);
          }, server.headersTimeout || 60_000);
          return;
        }
        clearTimeout(headTimer);
        headTimer = undefined;
        const data = r.kind === 'hit' && mayRead(r) ? this.lookup(r) : undefined;
        if (r.kind !== 'hit' || data === undefined || data.length > this.maxBlobBytes) return handOver(buf.subarray(at));
        at = r.end;
        this.counters.answered++;
        socket.cork();
        socket.write(this.headFor(data.length, r.keepAlive, keepAliveSec));
        if (!r.head) socket.write(data);
        socket.uncork();
        if (!r.keepAlive) {
          // As node:http does after a response that closes: whatever else was sent is not read.
          detach();
          socket.end();
          return;
        }
        if (socket.writableNeedDrain && at < buf.length) {
          socket.pause();
          socket.once('drain', () => {
            socket.resume();
            run(buf, at);
          });
          return;
        }
      }
    };
    const onData = (chunk: Buffer) => {
      const buf = pending === undefined ? chunk : Buffer.concat([pending, chunk]);
      pending = undefined;
      run(buf, 0);
    };
    const onIdle = () => socket.destroy();
    const onError = () => socket.destroy();
    const onClose = () => detach();

    this.sockets.add(socket);
    if (server.keepAliveTimeout > 0) socket.setTimeout(server.keepAliveTimeout);
    socket.on('timeout', onIdle);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.on('data', onData);
  }

  /** The verified bytes the routes would answer `r` with, when they are in memory. */
  private lookup(r: HitRequest): Buffer | undefined {
    if (r.ns === 'cas') return this.opts.blobs.peek(r.hash);
    // An opaque /ac/ value is served as the CAS blob it points to, byte for byte, as the routes do.
    const value = this.opts.actionValues?.peekRaw(r.hash);
    const data = value && this.opts.blobs.peek(value.hash);
    return data !== undefined && data.length === value?.size ? data : undefined;
  }

  /** The response head for a blob of `size` bytes, built once per size and second. */
  private headFor(size: number, keepAlive: boolean, keepAliveSec: number): Buffer {
    const second = Math.floor(this.opts.clock.now() / 1000);
    let h = this.heads.get(size);
    if (h === undefined || h.second !== second || h.keepAliveSec !== keepAliveSec) {
      if (h === undefined && this.heads.size >= MAX_CACHED_HEADS) this.heads.clear();
      const date = new Date(second * 1000).toUTCString();
      const start = `HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${size}\r\n${this.extra}Date: ${date}\r\n`;
      // node:http names the timeout only when it has one.
      const timeout = keepAliveSec > 0 ? `Keep-Alive: timeout=${keepAliveSec}\r\n` : '';
      h = {
        second,
        keepAliveSec,
        keepAlive: Buffer.from(`${start}Connection: keep-alive\r\n${timeout}\r\n`, 'latin1'),
        close: Buffer.from(`${start}Connection: close\r\n\r\n`, 'latin1'),
      };
      this.heads.set(size, h);
    }
    return keepAlive ? h.keepAlive : h.close;
  }
}
