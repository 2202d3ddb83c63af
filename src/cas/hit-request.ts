/**
 * The one request shape the raw hit path answers: `GET|HEAD {prefix}/cas|ac/<64 hex> HTTP/1.1`
 * (or 1.0), read straight from a socket's bytes. The parser is deliberately narrower than
 * HTTP: whatever it does not fully understand is `other`, and the connection goes to node:http,
 * which answers (or refuses) it as it always has. So the raw path can only ever answer requests
 * node:http would parse the same way, and never one it would refuse.
 */

/** A request head the raw path may answer, and where it ends in the buffer. */
export interface HitRequest {
  kind: 'hit';
  /** `cas`: the hash names a blob; `ac`: an action-cache key, whose value is an opaque blob. */
  ns: 'cas' | 'ac';
  head: boolean;
  hash: string;
  /** False after `Connection: close`, and for HTTP/1.0 without `Connection: keep-alive`. */
  keepAlive: boolean;
  /** HTTP/1.0 keeps the connection only when the response says `Connection: keep-alive`. */
  http10: boolean;
  /** The `Authorization` value, when the request has one. */
  authorization?: string;
  /** Offset just past the head's closing CRLF CRLF. */
  end: number;
}

/** `incomplete`: no full head yet, and none of it rules the raw path out so far. */
export type ParsedHead = HitRequest | { kind: 'incomplete' } | { kind: 'other' };

/**
 * Heads longer than this are never ours (a hit's is under 300 bytes with a token), and node:http
 * (16 KiB by default) is the one to decide about them.
 */
export const MAX_HIT_HEAD_BYTES = 4096;

const CR = 13;
const LF = 10;
const OTHER: ParsedHead = { kind: 'other' };
const INCOMPLETE: ParsedHead = { kind: 'incomplete' };

/** RFC 9110 tchar: what a header name may be made of. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;

const isHex = (c: number) => (c >= 48 && c <= 57) || (c >= 97 && c <= 102);

/** Parses the request head starting at `start` of `buf`, for the cache routes under `prefix`. */
export function parseHitRequest(buf: Buffer, start: number, prefix: string): ParsedHead {
  const limit = Math.min(buf.length, start + MAX_HIT_HEAD_BYTES);
  // Every byte of the head: visible ASCII, space, tab, and CR only as part of CRLF. Anything
  // else (bare LF, bare CR, NUL, DEL, non-ASCII) is left to node:http to judge.
  let end = -1;
  for (let i = start; i < limit; i++) {
    const c = buf[i]!;
    if (c === CR) {
      if (i + 1 >= buf.length) break;
      if (buf[i + 1] !== LF) return OTHER;
      if (i + 3 < buf.length && buf[i + 2] === CR && buf[i + 3] === LF) {
        end = i + 4;
        break;
      }
      i++;
      continue;
    }
    if (c === LF || c > 126 || (c < 32 && c !== 9)) return OTHER;
  }
  if (end < 0) return limit - start >= MAX_HIT_HEAD_BYTES ? OTHER : INCOMPLETE;
  return parseComplete(buf.toString('latin1', start, end - 4), prefix, end);
}

function parseComplete(head: string, prefix: string, end: number): ParsedHead {
  const lines = head.split('\r\n');
  const line = lines[0]!;
  const method = line.startsWith('GET ') ? 'GET' : line.startsWith('HEAD ') ? 'HEAD' : undefined;
  if (method === undefined) return OTHER;
  const targetAt = method.length + 1;
  const ns = line.startsWith(`${prefix}/cas/`, targetAt) ? 'cas' : line.startsWith(`${prefix}/ac/`, targetAt) ? 'ac' : undefined;
  if (ns === undefined) return OTHER;
  const hashAt = targetAt + prefix.length + ns.length + 2;
  if (line.length !== hashAt + 64 + 9) return OTHER;
  for (let i = hashAt; i < hashAt + 64; i++) if (!isHex(line.charCodeAt(i))) return OTHER;
  const version = line.slice(hashAt + 64);
  if (version !== ' HTTP/1.1' && version !== ' HTTP/1.0') return OTHER;
  const http10 = version === ' HTTP/1.0';

  let host = 0;
  let lengths = 0;
  let authorization: string | undefined;
  let close = false;
  let keepAliveToken = false;
  for (let n = 1; n < lines.length; n++) {
    const h = lines[n]!;
    const colon = h.indexOf(':');
    // No name, or a line folded onto the previous one (obs-fold starts with SP or HT).
    if (colon <= 0) return OTHER;
    for (let i = 0; i < colon; i++) {
      const c = h.charCodeAt(i);
      if (c >= 128 || TCHAR[c] !== 1) return OTHER;
    }
    const name = h.slice(0, colon).toLowerCase();
    const value = h.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    switch (name) {
      case 'content-length':
        // A GET with a body is legal but never ours; a second length is node:http's to refuse.
        if (value !== '0' || ++lengths > 1) return OTHER;
        break;
      case 'transfer-encoding':
      case 'upgrade':
      case 'expect':
      case 'http2-settings':
        return OTHER;
      case 'host':
        host++;
        break;
      case 'authorization':
        // node:http keeps the first of two; the routes' check would see that one. Leave it to them.
        if (authorization !== undefined) return OTHER;
        authorization = value;
        break;
      case 'connection':
        for (const token of value.split(',')) {
          const t = token.trim().toLowerCase();
          if (t === 'close') close = true;
          else if (t === 'keep-alive') keepAliveToken = true;
          else if (t !== '') return OTHER;
        }
        break;
      default:
    }
  }
  // node:http answers 400 to an HTTP/1.1 request without exactly one Host (requireHostHeader).
  if (host > 1 || (!http10 && host !== 1)) return OTHER;
  const keepAlive = !close && (!http10 || keepAliveToken);
  return { kind: 'hit', ns, head: method === 'HEAD', hash: line.slice(hashAt, hashAt + 64), keepAlive, http10, ...(authorization !== undefined && { authorization }), end };
}
