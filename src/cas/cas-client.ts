import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { BatchedWriter } from './batched-writer';
import * as path from 'node:path';
import { parseActionResult, serializeActionResult, type ActionResult } from './action-result';
import { isDigest, isHash, type Digest } from './digest';
import { BadDigestError, CasHttpError, DigestMismatchError } from './errors';

/** Options of {@link CasClient}. */
export interface CasClientOptions {
  /** Base URL including any prefix, e.g. `http://10.8.0.1:8080/cache`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Sent as Basic auth when no token is set. */
  basic?: { user: string; password: string };
  /** @defaultValue globalThis.fetch */
  fetch?: typeof fetch;
}

/** Something to upload: bytes in memory or a file on disk, with its digest. */
export type UploadItem = { digest: Digest; data: Buffer } | { digest: Digest; path: string };

/** Per-call options. */
export interface CallOptions {
  signal?: AbortSignal;
}

/**
 * The agents' client of the master's CAS HTTP API: asks which blobs are missing, uploads only
 * those (streamed from disk), and downloads blobs into files verifying their digest before they
 * are renamed into place, so a half or corrupt download never appears at the destination.
 */
export class CasClient {
  private readonly base: string;
  private readonly fetchFn: typeof fetch;
  private readonly authHeader: string | undefined;

  constructor(options: CasClientOptions) {
    this.base = options.baseUrl.replace(/\/+$/, '');
    this.fetchFn = options.fetch ?? globalThis.fetch;
    if (options.token) this.authHeader = `Bearer ${options.token}`;
    else if (options.basic) {
      this.authHeader = `Basic ${Buffer.from(`${options.basic.user}:${options.basic.password}`).toString('base64')}`;
    }
  }

  /** The subset of `digests` the server does not have. */
  async findMissing(digests: readonly Digest[], options: CallOptions = {}): Promise<Digest[]> {
    if (digests.length === 0) return [];
    const res = await this.request('POST', '/cas/find-missing', options, {
      body: JSON.stringify({ digests: digests.map((d) => ({ hash: d.hash, size: d.size })) }),
      headers: { 'content-type': 'application/json' },
    });
    await expectStatus(res, [200], 'find-missing');
    const body = (await res.json()) as { missing?: unknown };
    if (!Array.isArray(body.missing) || !body.missing.every(isDigest)) {
      throw new CasHttpError('find-missing answered without a valid { missing } list', res.status);
    }
    return body.missing as Digest[];
  }

  /** Uploads one blob (no existence check). */
  async upload(item: UploadItem, options: CallOptions = {}): Promise<void> {
    // fetch (undici) takes an async iterable as a streamed body; a node stream passed straight
    // through skips the web-stream adapter, which costs more CPU than the copy itself.
    const body = 'data' in item ? item.data : (createReadStream(item.path, { highWaterMark: 1024 * 1024 }) as unknown as RequestInit['body']);
    const res = await this.request('PUT', `/cas/${checkHash(item.digest.hash)}`, options, {
      body,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(item.digest.size) },
      ...('path' in item ? { duplex: 'half' } : {}),
    });
    await expectStatus(res, [200, 201, 204], `upload ${item.digest.hash}`);
  }

  /** Uploads only the items the server is missing; resolves the digests actually sent. */
  async uploadMissing(items: readonly UploadItem[], options: CallOptions = {}): Promise<Digest[]> {
    const missing = await this.findMissing(
      items.map((i) => i.digest),
      options,
    );
    const wanted = new Set(missing.map((d) => `${d.hash}/${d.size}`));
    const sent: Digest[] = [];
    for (const item of items) {
      const key = `${item.digest.hash}/${item.digest.size}`;
      if (!wanted.delete(key)) continue;
      await this.upload(item, options);
      sent.push(item.digest);
    }
    return sent;
  }

  /** Reads a whole blob into memory, verified; undefined on 404. */
  async getBlob(digest: Digest, options: CallOptions = {}): Promise<Buffer | undefined> {
    const res = await this.request('GET', `/cas/${checkHash(digest.hash)}`, options);
    if (res.status === 404) return undefined;
    await expectStatus(res, [200], `get ${digest.hash}`);
    const data = Buffer.from(await res.arrayBuffer());
    const hash = createHash('sha256').update(data).digest('hex');
    if (hash !== digest.hash || data.length !== digest.size) {
      throw new DigestMismatchError(`downloaded ${digest.hash}/${digest.size} but got ${hash}/${data.length}`);
    }
    return data;
  }

  /**
   * Downloads a blob to `dest` (created with `mode`), verifying while writing; resolves false on
   * 404. The bytes land in a temp file next to `dest` and are renamed only once verified.
   */
  async downloadToFile(digest: Digest, dest: string, options: CallOptions & { mode?: number } = {}): Promise<boolean> {
    const res = await this.request('GET', `/cas/${checkHash(digest.hash)}`, options);
    if (res.status === 404) return false;
    await expectStatus(res, [200], `get ${digest.hash}`);
    await fsp.mkdir(path.dirname(dest), { recursive: true });
    const tmp = `${dest}.part-${randomBytes(6).toString('hex')}`;
    const hasher = createHash('sha256');
    let size = 0;
    try {
      const fh = await fsp.open(tmp, 'wx', options.mode ?? 0o644);
      const out = new BatchedWriter(fh);
      try {
        if (res.body) {
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
            hasher.update(buf);
            size += buf.length;
            await out.write(buf);
          }
        }
        await out.flush();
        await fh.sync();
      } finally {
        await fh.close();
      }
      const hash = hasher.digest('hex');
      if (hash !== digest.hash || size !== digest.size) {
        throw new DigestMismatchError(`downloaded ${digest.hash}/${digest.size} but got ${hash}/${size}`);
      }
      if (options.mode !== undefined) await fsp.chmod(tmp, options.mode);
      await fsp.rename(tmp, dest);
      return true;
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    }
  }

  /** The cached result of `actionHash`, or undefined (miss, incomplete, or not one of ours). */
  async getActionResult(actionHash: string, options: CallOptions = {}): Promise<ActionResult | undefined> {
    const res = await this.request('GET', `/ac/${checkHash(actionHash)}`, options);
    if (res.status === 404) return undefined;
    await expectStatus(res, [200], `get action ${actionHash}`);
    if (!(res.headers.get('content-type') ?? '').startsWith('application/json')) {
      await res.body?.cancel();
      return undefined;
    }
    return parseActionResult(await res.json());
  }

  /** Stores a result; resolves whether the server kept it (failed results only with `allowFailed`). */
  async putActionResult(
    actionHash: string,
    result: ActionResult,
    options: CallOptions & { allowFailed?: boolean } = {},
  ): Promise<boolean> {
    const res = await this.request('PUT', `/ac/${checkHash(actionHash)}`, options, {
      body: serializeActionResult(result),
      headers: { 'content-type': 'application/json', ...(options.allowFailed ? { 'x-spillway-allow-failed': '1' } : {}) },
    });
    await expectStatus(res, [200], `put action ${actionHash}`);
    return res.headers.get('x-spillway-stored') !== 'false';
  }

  private async request(
    method: string,
    route: string,
    options: CallOptions,
    init: RequestInit & { duplex?: 'half' } = {},
  ): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.authHeader) headers.set('authorization', this.authHeader);
    return this.fetchFn(`${this.base}${route}`, {
      ...init,
      method,
      headers,
      ...(options.signal ? { signal: options.signal } : {}),
    } as RequestInit);
  }
}

async function expectStatus(res: Response, ok: number[], what: string): Promise<void> {
  if (ok.includes(res.status)) return;
  const text = await res.text().catch(() => '');
  throw new CasHttpError(`${what}: HTTP ${res.status} ${text.slice(0, 200)}`, res.status);
}

function checkHash(hash: string): string {
  if (!isHash(hash)) throw new BadDigestError(`bad hash (want 64 lower-case hex): ${String(hash).slice(0, 80)}`);
  return hash;
}
