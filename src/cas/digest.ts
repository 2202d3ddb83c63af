import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** A content address: the SHA-256 of a blob (64 lower-case hex digits) and its size in bytes. */
export interface Digest {
  hash: string;
  size: number;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** The digest of zero bytes; the store treats it as always present. */
export const EMPTY_DIGEST: Readonly<Digest> = Object.freeze({
  hash: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  size: 0,
});

/** True when `hash` is 64 lower-case hex digits (the only form used on disk and in URLs). */
export function isHash(hash: unknown): hash is string {
  return typeof hash === 'string' && HEX64.test(hash);
}

/** True when `value` is a well-formed digest: a valid hash and a non-negative safe integer size. */
export function isDigest(value: unknown): value is Digest {
  if (value === null || typeof value !== 'object') return false;
  const v = value as { hash?: unknown; size?: unknown };
  return isHash(v.hash) && typeof v.size === 'number' && Number.isSafeInteger(v.size) && v.size >= 0;
}

/**
 * Validates an untrusted digest-shaped value and returns a fresh plain `Digest`, or throws a
 * `TypeError` saying what is wrong. Upper-case hex is rejected rather than folded so that one
 * blob never has two spellings.
 */
export function parseDigest(value: unknown): Digest {
  if (!isDigest(value)) {
    throw new TypeError(`not a digest (want { hash: 64 lower-case hex, size: integer >= 0 }): ${safeJson(value)}`);
  }
  return { hash: value.hash, size: value.size };
}

/** Parses the `hash/size` text form used in logs and CLI arguments. */
export function parseDigestString(text: string): Digest {
  const [hash, size, ...rest] = text.split('/');
  const n = Number(size);
  if (rest.length > 0 || size === undefined || !/^\d+$/.test(size)) {
    throw new TypeError(`not a digest "hash/size": ${text}`);
  }
  return parseDigest({ hash, size: n });
}

/** The `hash/size` text form. */
export function formatDigest(d: Digest): string {
  return `${d.hash}/${d.size}`;
}

/** The digest of an in-memory buffer or string (UTF-8). */
export function digestOf(data: Buffer | string): Digest {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return { hash: createHash('sha256').update(buf).digest('hex'), size: buf.length };
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value)?.slice(0, 200) ?? String(value);
  } catch {
    return String(value);
  }
}

/** The digest of a file, streamed (files may be larger than memory). */
export async function digestOfFile(file: string): Promise<Digest> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { hash: hash.digest('hex'), size };
}

/** `digests` without repeats (same hash and size), in first-seen order. */
export function uniqueDigests(digests: readonly Digest[]): Digest[] {
  const unique: Digest[] = [];
  const seen = new Set<string>();
  for (const d of digests) {
    const key = `${d.hash}/${d.size}`;
    if (seen.has(key)) continue;
    seen.add(key);
    unique.push(d);
  }
  return unique;
}
