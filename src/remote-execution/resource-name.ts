import { isHash, type Digest } from '../cas';
import { invalidArgument } from './rpc-error';
import { requestInstance, RESERVED_SEGMENTS } from './request-digest';

/** A parsed ByteStream resource name. */
export interface BlobResource {
  instance: string;
  digest: Digest;
}

const SIZE = /^(0|[1-9][0-9]{0,15})$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const METADATA_SEGMENT = /^[A-Za-z0-9_.=+-]{1,256}$/;

/** `{instance}/blobs/{hash}/{size}` (ByteStream.Read). @throws RpcError INVALID_ARGUMENT */
export function parseReadResource(name: string): BlobResource {
  const segs = split(name);
  const at = segs.findIndex((s) => RESERVED_SEGMENTS.has(s));
  if (at < 0 || segs[at] !== 'blobs') throw bad(name, segs[at] === 'compressed-blobs' ? 'compressed-blobs are not supported (no compressor is advertised)' : 'want {instance}/blobs/{hash}/{size}');
  const rest = segs.slice(at + 1);
  if (rest.length !== 2) throw bad(name, 'want {instance}/blobs/{hash}/{size}');
  return { instance: instance(segs.slice(0, at), name), digest: digest(rest[0]!, rest[1]!, name) };
}

/** `{instance}/uploads/{uuid}/blobs/{hash}/{size}{/optional_metadata}` (ByteStream.Write). @throws RpcError INVALID_ARGUMENT */
export function parseWriteResource(name: string): BlobResource & { uuid: string } {
  const segs = split(name);
  const at = segs.findIndex((s) => RESERVED_SEGMENTS.has(s));
  const shape = 'want {instance}/uploads/{uuid}/blobs/{hash}/{size}';
  if (at < 0 || segs[at] !== 'uploads') throw bad(name, shape);
  const [uuid, kind, hash, size, ...meta] = segs.slice(at + 1);
  if (uuid === undefined || !UUID.test(uuid)) throw bad(name, 'the upload id must be a UUID');
  if (kind === 'compressed-blobs') throw bad(name, 'compressed-blobs are not supported (no compressor is advertised)');
  if (kind !== 'blobs' || hash === undefined || size === undefined) throw bad(name, shape);
  if (!meta.every((m) => METADATA_SEGMENT.test(m) && m !== '.' && m !== '..')) throw bad(name, 'bad trailing metadata');
  return { instance: instance(segs.slice(0, at), name), uuid: uuid.toLowerCase(), digest: digest(hash, size, name) };
}

function split(name: string): string[] {
  if (typeof name !== 'string' || name === '') throw invalidArgument('resource_name is required');
  if (name.length > 2048) throw invalidArgument('resource_name longer than 2048 characters');
  const segs = name.split('/');
  // Empty, "." and ".." segments would let one blob have several names (or climb out of one).
  if (segs.some((s) => s === '' || s === '.' || s === '..')) throw bad(name, 'empty, "." or ".." path segment');
  return segs;
}

function instance(segs: string[], name: string): string {
  try {
    return requestInstance(segs.join('/'));
  } catch {
    throw bad(name, 'bad instance name');
  }
}

function digest(hash: string, size: string, name: string): Digest {
  if (!isHash(hash)) throw bad(name, 'hash must be 64 lower-case hex digits');
  if (!SIZE.test(size) || !Number.isSafeInteger(Number(size))) throw bad(name, 'size must be a decimal integer >= 0 without leading zeros');
  return { hash, size: Number(size) };
}

function bad(name: string, why: string) {
  return invalidArgument(`resource_name "${name.slice(0, 200)}": ${why}`);
}
