import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';
import type { Logger } from '../lib';
import { SpillwayError } from '../lib';
import type { ActionCache } from './action-cache';
import { parseOwnActionResultBytes } from './action-result';
import { isDigest, isHash, type Digest } from './digest';
import type { BlobReader, BlobStore } from './blob-store';
import { BlobTooLargeError } from './errors';
import { CasAuth, type CasAuthOptions } from './http-auth';

/** Options of {@link casRoutes}. */
export interface CasRoutesOptions {
  store: BlobStore;
  actionCache: ActionCache;
  /**
   * Path prefix before `/cas/` and `/ac/`, e.g. `/cache`. This is fastify's own `register`
   * option of the same name, so it only takes effect through `app.register(casRoutes, ...)`.
   * @defaultValue ''
   */
  prefix?: string;
  /** @defaultValue open to anyone for reading and writing (no auth) */
  auth?: CasAuthOptions;
  /** Largest blob or `/ac/` value accepted by PUT; larger ones get 413. */
  maxBlobBytes: number;
  /** Where unexpected errors are reported (`cas.http-error`). */
  log?: Logger;
}

const STATUS_BY_CODE: Record<string, number> = {
  SPILLWAY_E_CAS_DIGEST_MISMATCH: 400,
  SPILLWAY_E_CAS_BAD_DIGEST: 400,
  SPILLWAY_E_CAS_TOO_LARGE: 413,
  SPILLWAY_E_CAS_FULL: 507,
};

/** `/ac/` bodies up to this size are inspected for spillway's result tag; larger ones are raw. */
const AC_JSON_PEEK_BYTES = 1024 * 1024;
const MAX_FIND_MISSING = 100_000;

/**
 * The HTTP remote-cache protocol Bazel (`--remote_cache=http://...`) and ccache
 * (`remote_storage=http://...`, also `|layout=bazel`) speak: `GET|HEAD|PUT|DELETE
 * {prefix}/cas/<sha256>` and `{prefix}/ac/<64 hex>`, 200 on a hit, 404 on a miss (never 204,
 * which some clients read as a hit), plus `POST {prefix}/cas/find-missing`.
 *
 * Register it with `app.register(casRoutes, options)`: it installs a pass-through body parser
 * for its PUT routes (bodies are streamed to disk, never buffered) and that parser stays inside
 * this plugin's encapsulation context, so the host's JSON routes are unaffected.
 */
export const casRoutes: FastifyPluginAsync<CasRoutesOptions> = async (app, opts) => {
  // fastify has already applied opts.prefix to this context (it is a reserved register option).
  const prefix = '';

  app.setErrorHandler((err: Error & { statusCode?: number }, request, reply) => {
    const code = err instanceof SpillwayError ? err.code : undefined;
    const mapped = code === undefined ? undefined : STATUS_BY_CODE[code];
    const status = mapped ?? (err.statusCode !== undefined && err.statusCode < 500 ? err.statusCode : 500);
    if (status >= 500 && status !== 507) opts.log?.error('cas.http-error', { method: request.method, url: request.url, err });
    // The client may still be sending a body we will never read; do not reuse the connection.
    if (request.method === 'PUT' && status !== 200) reply.header('connection', 'close');
    void reply.code(status).send({ error: code ?? 'SPILLWAY_E_CAS_HTTP', message: err.message });
  });

  const auth = new CasAuth(opts.auth);
  app.addHook('onRequest', async (request, reply) => {
    // find-missing is a POST but only reads; everything else that is not GET or HEAD writes.
    const reads = request.method === 'GET' || request.method === 'HEAD' || request.url.split('?')[0]!.endsWith('/cas/find-missing');
    const verdict = auth.check(request.headers.authorization, reads ? 'read' : 'read-write');
    if (verdict.ok) return;
    if (request.method === 'PUT') reply.header('connection', 'close');
    if (verdict.status === 401) reply.header('www-authenticate', 'Basic realm="spillway-cas"');
    const code = verdict.status === 401 ? 'SPILLWAY_E_CAS_UNAUTHORIZED' : 'SPILLWAY_E_CAS_FORBIDDEN';
    await reply.code(verdict.status).send({ error: code, message: verdict.message });
  });

  await app.register(async (json) => {
    json.post(`${prefix}/cas/find-missing`, async (request, reply) => {
      const body = request.body as { digests?: unknown } | undefined;
      const list = body?.digests;
      if (!Array.isArray(list) || list.length > MAX_FIND_MISSING || !list.every(isDigest)) {
        return reply.code(400).send({ error: 'SPILLWAY_E_CAS_BAD_DIGEST', message: `want { digests: [{ hash, size }] } (at most ${MAX_FIND_MISSING})` });
      }
      return { missing: await opts.store.findMissing(list as Digest[]) };
    });
  });

  await app.register(async (raw) => {
    // Bodies of any content type (clients send application/octet-stream, none, or even
    // application/json to /ac/) reach the handlers as the unread request stream.
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
    // fastify answers 415 to an empty Content-Type header instead of using the catch-all.
    raw.addHook('onRequest', async (request) => {
      if (request.headers['content-type'] === '') delete request.headers['content-type'];
    });
    registerBlobRoutes(raw, prefix, opts);
  });
};

function registerBlobRoutes(app: FastifyInstance, prefix: string, opts: CasRoutesOptions): void {
  const { store, actionCache } = opts;
  const noHead = { exposeHeadRoute: false } as const;

  app.get(`${prefix}/cas/:hash`, noHead, async (request, reply) => {
    const reader = await store.get(hashParam(request));
    if (!reader) return notFound(reply);
    return sendBlob(reply, reader);
  });
  app.head(`${prefix}/cas/:hash`, async (request, reply) => {
    const size = await store.sizeOf(hashParam(request));
    if (size === undefined) return notFound(reply);
    return reply.code(200).header('content-type', 'application/octet-stream').header('content-length', size).send();
  });
  app.put(`${prefix}/cas/:hash`, async (request, reply) => {
    const hash = hashParam(request);
    const size = declaredSize(request, opts.maxBlobBytes);
    await store.put(limitBody(request, opts.maxBlobBytes), size === undefined ? { hash } : { hash, size });
    return reply.code(200).send();
  });
  app.delete(`${prefix}/cas/:hash`, async (request, reply) => {
    return (await store.delete(hashParam(request))) ? reply.code(200).send() : notFound(reply);
  });

  app.get(`${prefix}/ac/:hash`, noHead, async (request, reply) => {
    const key = hashParam(request);
    const result = await actionCache.get(key);
    if (result) return reply.code(200).header('content-type', 'application/json').send(JSON.stringify(result));
    const reader = await actionCache.getRaw(key);
    if (!reader) return notFound(reply);
    return sendBlob(reply, reader);
  });
  app.head(`${prefix}/ac/:hash`, async (request, reply) => {
    const key = hashParam(request);
    const result = await actionCache.get(key);
    if (result) return reply.code(200).header('content-type', 'application/json').send();
    const reader = await actionCache.getRaw(key);
    if (!reader) return notFound(reply);
    if (!reader.data) reader.stream.destroy();
    return reply.code(200).header('content-type', 'application/octet-stream').header('content-length', reader.digest.size).send();
  });
  app.put(`${prefix}/ac/:hash`, async (request, reply) => {
    const key = hashParam(request);
    const size = declaredSize(request, opts.maxBlobBytes);
    const body = limitBody(request, opts.maxBlobBytes);
    const { head, rest } = await peek(body, AC_JSON_PEEK_BYTES);
    const result = rest ? undefined : parseOwnActionResultBytes(head);
    if (result) {
      const allowFailed = request.headers['x-spillway-allow-failed'] === '1';
      const stored = await actionCache.put(key, result, { allowFailed });
      return reply.code(200).header('x-spillway-stored', String(stored)).send();
    }
    await actionCache.putRaw(key, rest ? joined(head, rest) : Readable.from([head]), size);
    return reply.code(200).send();
  });
  app.delete(`${prefix}/ac/:hash`, async (request, reply) => {
    return (await actionCache.delete(hashParam(request))) ? reply.code(200).send() : notFound(reply);
  });
}

function hashParam(request: FastifyRequest): string {
  const hash = (request.params as { hash?: string }).hash;
  if (!isHash(hash)) throw Object.assign(new Error('key must be 64 lower-case hex digits'), { statusCode: 400 });
  return hash;
}

function notFound(reply: FastifyReply): FastifyReply {
  return reply.code(404).send({ error: 'SPILLWAY_E_NOT_FOUND' });
}

function sendBlob(reply: FastifyReply, reader: BlobReader): FastifyReply {
  return reply.code(200).header('content-type', 'application/octet-stream').header('content-length', reader.digest.size).send(reader.data ?? reader.stream);
}

function declaredSize(request: FastifyRequest, max: number): number | undefined {
  const header = request.headers['content-length'];
  if (header === undefined || request.headers['transfer-encoding'] !== undefined) return undefined;
  const size = Number(header);
  if (!Number.isSafeInteger(size) || size < 0) throw Object.assign(new Error('bad content-length'), { statusCode: 400 });
  if (size > max) throw new BlobTooLargeError(`body of ${size} bytes exceeds the ${max}-byte limit`);
  return size;
}

/**
 * The request body, failing with BlobTooLargeError past `max` bytes. A generator rather than a
 * Transform: it pulls only as fast as the store writes, and its error reaches the consumer
 * instead of being emitted while nobody listens.
 */
async function* limitBody(request: FastifyRequest, max: number): AsyncGenerator<Buffer> {
  const source = request.body instanceof Readable ? request.body : request.raw;
  let seen = 0;
  for await (const chunk of source as AsyncIterable<Buffer>) {
    seen += chunk.length;
    if (seen > max) throw new BlobTooLargeError(`body exceeds the ${max}-byte limit`);
    yield chunk;
  }
}

/** Reads up to `limit` bytes; `rest` is the unread remainder when the body is longer. */
async function peek(body: AsyncIterable<Buffer>, limit: number): Promise<{ head: Buffer; rest?: AsyncIterator<Buffer> }> {
  const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const chunks: Buffer[] = [];
  let bytes = 0;
  for (;;) {
    const next = await it.next();
    if (next.done) return { head: Buffer.concat(chunks) };
    chunks.push(next.value);
    bytes += next.value.length;
    if (bytes > limit) return { head: Buffer.concat(chunks), rest: it };
  }
}

async function* joined(head: Buffer, rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  yield head;
  for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
}
