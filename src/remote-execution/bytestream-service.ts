import type { ServerReadableStream, ServerWritableStream } from '@grpc/grpc-js';
import type { Digest } from '../cas';
import { preEncoded } from './encoded-message';
import { CallReader, clientStream, send, serverStream, unary } from './grpc-handlers';
import { parseReadResource, parseWriteResource } from './resource-name';
import { Code, invalidArgument, notFound, RpcError } from './rpc-error';
import type { CacheServiceDeps } from './cache-deps';
import type { ByteStreamHandlers, ReadRequest__Output, ReadResponse, WriteRequest__Output, WriteResponse } from './reapi-types';

/** Bytes per ReadResponse: small enough to interleave calls, large enough to keep framing cheap. */
const CHUNK = 64 * 1024;

/** `ReadResponse { bytes data = 10; }`: the field's key (10 << 3 | length-delimited). */
const DATA_KEY = 0x52;

/**
 * A ReadResponse in its wire form (key, varint length, the bytes): one copy of the chunk,
 * without proto-loader's fromObject and a protobufjs writer for every 64 KiB sent.
 */
function readResponse(data: Buffer): ReadResponse {
  const head: number[] = [DATA_KEY];
  for (let n = data.length; ; n = Math.floor(n / 128)) {
    if (n < 128) {
      head.push(n);
      break;
    }
    head.push((n % 128) | 0x80);
  }
  return preEncoded<ReadResponse>(Buffer.concat([Buffer.from(head), data]));
}

/**
 * google.bytestream.ByteStream over the CAS: Read of `{instance}/blobs/{hash}/{size}`, Write of
 * `{instance}/uploads/{uuid}/blobs/{hash}/{size}`, QueryWriteStatus. A write streams into the
 * store, which hashes while it writes and commits the blob only when the bytes match the
 * digest. Writes are not resumable: an interrupted upload is discarded and QueryWriteStatus
 * reports 0 until the blob exists, so clients start over from offset 0.
 */
export function byteStreamService(deps: CacheServiceDeps): ByteStreamHandlers {
  const { store, auth, log } = deps;
  return {
    Read: serverStream(log, 'Read', async (call: ServerWritableStream<ReadRequest__Output, ReadResponse>) => {
      auth.require(call.metadata, 'read');
      const { digest } = parseReadResource(call.request.resourceName);
      const { readOffset, readLimit } = call.request;
      if (readOffset < 0) throw new RpcError(Code.OUT_OF_RANGE, `read_offset ${readOffset} is negative`);
      if (readLimit < 0) throw invalidArgument(`read_limit ${readLimit} is negative`);
      const reader = await store.get(digest.hash);
      if (!reader || reader.digest.size !== digest.size) {
        reader?.stream.destroy();
        throw notFound(`blob ${digest.hash}/${digest.size} not found`);
      }
      if (readOffset > digest.size) {
        reader.stream.destroy();
        throw new RpcError(Code.OUT_OF_RANGE, `read_offset ${readOffset} is past the end of a ${digest.size}-byte blob`);
      }
      const end = readLimit === 0 ? digest.size : Math.min(digest.size, readOffset + readLimit);
      if (reader.data) {
        for (let at = readOffset; at < end; at += CHUNK) await send(call, readResponse(reader.data.subarray(at, Math.min(end, at + CHUNK))));
        return;
      }
      let pos = 0;
      try {
        for await (const raw of reader.stream) {
          const chunk = raw as Buffer;
          const from = Math.max(readOffset - pos, 0);
          const to = Math.min(chunk.length, end - pos);
          pos += chunk.length;
          for (let at = from; at < to; at += CHUNK) await send(call, readResponse(chunk.subarray(at, Math.min(to, at + CHUNK))));
          if (pos >= end) break;
        }
      } finally {
        reader.stream.destroy();
      }
    }),

    Write: clientStream(log, 'Write', async (call: ServerReadableStream<WriteRequest__Output, WriteResponse>): Promise<WriteResponse> => {
      auth.require(call.metadata, 'read-write');
      const reader = new CallReader(call);
      const first = await reader.next();
      if (!first) throw invalidArgument('Write stream ended before its first message');
      const { digest } = parseWriteResource(first.resourceName);
      if (digest.size > deps.maxBlobBytes) {
        throw invalidArgument(`blob of ${digest.size} bytes exceeds the ${deps.maxBlobBytes}-byte limit (cas.maxBlobMb)`);
      }
      // Someone already stored it (another upload, another protocol): success, nothing to send.
      if (await store.has(digest)) return { committedSize: digest.size };
      if (first.writeOffset !== 0) throw invalidArgument(`write_offset ${first.writeOffset}: uploads start at 0 here (QueryWriteStatus reports 0)`);
      const received = await storeUpload(deps, reader, first, digest);
      return { committedSize: received };
    }),

    QueryWriteStatus: unary(log, 'QueryWriteStatus', async (call) => {
      auth.require(call.metadata, 'read-write');
      const { digest } = parseWriteResource(call.request.resourceName);
      const complete = await store.has(digest);
      return { committedSize: complete ? digest.size : 0, complete };
    }),
  };
}

/** Streams the upload into the store, checking offsets and size as messages arrive. Resolves with the bytes stored. */
async function storeUpload(deps: CacheServiceDeps, reader: CallReader<WriteRequest__Output>, first: WriteRequest__Output, digest: Digest): Promise<number> {
  let received = 0;
  async function* body(): AsyncGenerator<Buffer> {
    let msg = first;
    for (;;) {
      if (msg.resourceName !== '' && msg.resourceName !== first.resourceName) throw invalidArgument('resource_name changed within one Write stream');
      if (msg.writeOffset !== received) throw invalidArgument(`write_offset ${msg.writeOffset} where ${received} was expected`);
      received += msg.data.length;
      if (received > digest.size) throw invalidArgument(`more than the ${digest.size} bytes the resource name declares`);
      if (msg.data.length > 0) yield msg.data;
      if (msg.finishWrite) return;
      const next = await reader.next();
      if (!next) throw invalidArgument(`stream ended after ${received} of ${digest.size} bytes without finish_write`);
      msg = next;
    }
  }
  await deps.store.put(body(), { hash: digest.hash, size: digest.size });
  return received;
}
