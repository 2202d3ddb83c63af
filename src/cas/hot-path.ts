import http from 'node:http';
import { isHash } from './digest';
import type { CasAuth } from './http-auth';

/** Where the hot path finds verified bytes without I/O: the memory tier's `peek`. */
export interface HotBlobs {
  peek(hash: string): Buffer | undefined;
}

/** Options of {@link CasHotPath}. */
export interface CasHotPathOptions {
  blobs: HotBlobs;
  auth: CasAuth;
  /** The cache routes' prefix, e.g. `/cache`. @defaultValue '' */
  prefix?: string;
}

/**
 * Answers `GET {prefix}/cas/<sha256>` for blobs the memory tier holds straight on node:http,
 * before fastify sees the request: a cache hit is the farm's most frequent request, and its
 * routing, hooks and reply objects cost more than the hit itself (bench/cas.ts: about half of
 * the CPU of a 4 KiB hit). Everything else (misses, writes, errors, refusals) returns false and
 * goes to the fastify routes, which answer it the same way as before.
 */
export class CasHotPath {
  private readonly casPrefix: string;

  constructor(private readonly opts: CasHotPathOptions) {
    this.casPrefix = `${opts.prefix ?? ''}/cas/`;
  }

  /** True when the request was answered here. */
  handle(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const url = req.url;
    if (req.method !== 'GET' || url === undefined || url.length !== this.casPrefix.length + 64 || !url.startsWith(this.casPrefix)) return false;
    const hash = url.slice(this.casPrefix.length);
    if (!isHash(hash) || !this.opts.auth.check(req.headers.authorization, 'read').ok) return false;
    const data = this.opts.blobs.peek(hash);
    if (data === undefined) return false;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length });
    res.end(data);
    return true;
  }

  /**
   * A fastify `serverFactory` whose server tries this path first, with fastify's own server
   * settings copied (a factory's server does not get them otherwise).
   */
  serverFactory(): (handler: http.RequestListener, options: HotServerOptions) => http.Server {
    return (handler, options) =>
      withServerOptions(
        http.createServer((req, res) => {
          if (!this.handle(req, res)) handler(req, res);
        }),
        options,
      );
  }
}

/** Gives a factory-made server the settings fastify gives the servers it makes itself. */
export function withServerOptions(server: http.Server, options: HotServerOptions): http.Server {
  if (options.keepAliveTimeout !== undefined) server.keepAliveTimeout = options.keepAliveTimeout;
  if (options.requestTimeout !== undefined) server.requestTimeout = options.requestTimeout;
  if (options.connectionTimeout !== undefined) server.setTimeout(options.connectionTimeout);
  if (options.maxRequestsPerSocket) server.maxRequestsPerSocket = options.maxRequestsPerSocket;
  return server;
}

/** The fastify options a server factory receives that node:http servers also have. */
export interface HotServerOptions {
  keepAliveTimeout?: number;
  requestTimeout?: number;
  connectionTimeout?: number;
  maxRequestsPerSocket?: number | null;
}
