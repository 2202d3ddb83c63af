import type { ServerWritableStream } from '@grpc/grpc-js';
import type { Digest } from '../cas';
import { readBlob } from './blob-read';
import { send, serverStream } from './grpc-handlers';
import { reapiProtos } from './reapi-protos';
import { requestDigest, requestInstance, requireSha256 } from './request-digest';
import { Code, invalidArgument, notFound, RpcError } from './rpc-error';
import type { CacheServiceDeps } from './cache-deps';
import type { Directory__Output, GetTreeRequest__Output, GetTreeResponse } from './reapi-types';

const DEFAULT_PAGE = 1000;
/** Bytes of Directory protos per response: well inside gRPC's default 4 MiB message. */
const PAGE_BYTES = 2 * 1024 * 1024;
/** A tree with more distinct directories than this is refused rather than walked. */
const MAX_DIRECTORIES = 200_000;
const TOKEN = /^[1-9][0-9]{0,8}$/;
/** No real Directory comes near this (it is ~20k entries); with PAGE_BYTES it keeps a page under 4 MiB. */
const MAX_DIRECTORY_BYTES = 2 * 1024 * 1024;

/**
 * ContentAddressableStorage.GetTree: every Directory below the root, breadth first (a stable
 * order, each distinct directory once), in pages. A page token is the position of the next
 * directory in that order, so a client can resume with it in a new call. Directories missing
 * from the CAS are left out with what is below them, as the spec asks; a blob that is not a
 * canonical Directory proto is INVALID_ARGUMENT.
 */
export function directoryTree(deps: CacheServiceDeps) {
  return serverStream(deps.log, 'GetTree', async (call: ServerWritableStream<GetTreeRequest__Output, GetTreeResponse>) => {
    deps.auth.require(call.metadata, 'read');
    const req = call.request;
    requestInstance(req.instanceName);
    requireSha256(req.digestFunction);
    const root = requestDigest(req.rootDigest, 'root_digest');
    if (req.pageSize < 0) throw invalidArgument('page_size must be >= 0');
    const pageSize = req.pageSize === 0 ? DEFAULT_PAGE : Math.min(req.pageSize, DEFAULT_PAGE);
    if (req.pageToken !== '' && !TOKEN.test(req.pageToken)) throw invalidArgument(`page_token "${req.pageToken.slice(0, 40)}" is not one this server gave out`);
    const skip = req.pageToken === '' ? 0 : Number(req.pageToken);

    const queue: Digest[] = [root];
    const seen = new Set([key(root)]);
    let position = 0;
    let page: Directory__Output[] = [];
    let pageBytes = 0;
    let sentAny = false;
    while (queue.length > 0) {
      if (call.cancelled) return;
      const digest = queue.shift()!;
      if (digest.size > MAX_DIRECTORY_BYTES) throw invalidArgument(`blob ${digest.hash}/${digest.size} is too large to be a Directory`);
      const bytes = await readBlob(deps.store, digest);
      if (!bytes) {
        if (digest === root) throw notFound(`root directory ${digest.hash}/${digest.size} not found`);
        continue;
      }
      const dir = decodeDirectory(bytes, digest);
      for (const child of dir.directories) {
        const d = requestDigest(child.digest, `directory ${digest.hash}: child "${child.name}"`);
        if (seen.has(key(d))) continue;
        if (seen.size >= MAX_DIRECTORIES) throw new RpcError(Code.RESOURCE_EXHAUSTED, `tree has more than ${MAX_DIRECTORIES} directories`);
        seen.add(key(d));
        queue.push(d);
      }
      if (position++ < skip) continue;
      page.push(dir);
      pageBytes += bytes.length;
      if (page.length >= pageSize || pageBytes >= PAGE_BYTES) {
        await send(call, { directories: page, nextPageToken: queue.length > 0 ? String(position) : '' });
        sentAny = true;
        page = [];
        pageBytes = 0;
      }
    }
    if (page.length > 0 || !sentAny) await send(call, { directories: page, nextPageToken: '' });
  });
}

function decodeDirectory(bytes: Buffer, digest: Digest): Directory__Output {
  const codec = reapiProtos().directory;
  try {
    const dir = codec.decode(bytes);
    // protobuf decoding accepts many byte strings (unknown fields are skipped), so only a blob
    // that re-encodes to itself is taken for a Directory.
    if (codec.encode(dir).equals(bytes)) return dir;
  } catch {
    // fall through
  }
  throw invalidArgument(`blob ${digest.hash}/${digest.size} is not a canonical Directory proto`);
}

const key = (d: Digest): string => `${d.hash}/${d.size}`;
