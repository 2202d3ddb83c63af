import assert from 'node:assert/strict';
import { MAX_HIT_HEAD_BYTES, parseHitRequest } from '../../src/cas';

const H = 'ab'.repeat(32);
const line = (target = `/cache/cas/${H}`, method = 'GET', version = 'HTTP/1.1') => `${method} ${target} ${version}\r\n`;
const parse = (text: string | Buffer) => parseHitRequest(Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1'), 0, '/cache');
const kind = (text: string | Buffer) => parse(text).kind;

describe('cas parseHitRequest (the raw hit path\'s strict request heads)', () => {
  it('refuses, as "other", every head it does not fully understand', () => {
    const others: Array<[string, string]> = [
      ['PUT', `${line(undefined, 'PUT')}Host: x\r\n\r\n`],
      ['lower-case method', `${line(undefined, 'get')}Host: x\r\n\r\n`],
      ['Transfer-Encoding', `${line()}Host: x\r\nTransfer-Encoding: chunked\r\n\r\n`],
      ['TE and CL', `${line()}Host: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n`],
      ['a body on GET', `${line()}Host: x\r\nContent-Length: 44\r\n\r\n`],
      ['two Content-Lengths', `${line()}Host: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n`],
      ['a Content-Length list', `${line()}Host: x\r\nContent-Length: 0, 0\r\n\r\n`],
      ['%2e in the path', `${line(`/cache/cas/%2e%2e/${H.slice(6)}`)}Host: x\r\n\r\n`],
      ['an extra segment', `${line(`/cache/cas/${H}/x`)}Host: x\r\n\r\n`],
      ['a query', `${line(`/cache/cas/${H}?x=1`)}Host: x\r\n\r\n`],
      ['upper-case hex', `${line(`/cache/cas/${H.toUpperCase()}`)}Host: x\r\n\r\n`],
      ['no prefix', `${line(`/cas/${H}`)}Host: x\r\n\r\n`],
      ['double slash', `${line(`/cache//cas/${H.slice(1)}`)}Host: x\r\n\r\n`],
      ['/ac/ with upper-case hex', `${line(`/cache/ac/${H.toUpperCase()}`)}Host: x\r\n\r\n`],
      ['/ac/ with a short key', `${line(`/cache/ac/${H.slice(2)}`)}Host: x\r\n\r\n`],
      ['/ac/ with a non-hex key', `${line(`/cache/ac/${H.slice(1)}g`)}Host: x\r\n\r\n`],
      ['/ac/ with an extra segment', `${line(`/cache/ac/${H}/x`)}Host: x\r\n\r\n`],
      ['/ac/ without the prefix', `${line(`/ac/${H}`)}Host: x\r\n\r\n`],
      ['/acx/', `${line(`/cache/acx/${H.slice(1)}`)}Host: x\r\n\r\n`],
      ['PUT /ac/', `${line(`/cache/ac/${H}`, 'PUT')}Host: x\r\nContent-Length: 0\r\n\r\n`],
      ['DELETE /ac/', `${line(`/cache/ac/${H}`, 'DELETE')}Host: x\r\n\r\n`],
      ['absolute form', `${line(`http://x/cache/cas/${H}`)}Host: x\r\n\r\n`],
      ['HTTP/2.0', `${line(undefined, 'GET', 'HTTP/2.0')}Host: x\r\n\r\n`],
      ['two spaces', `GET  /cache/cas/${H} HTTP/1.1\r\nHost: x\r\n\r\n`],
      ['no Host on 1.1', `${line()}\r\n`],
      ['two Hosts', `${line()}Host: x\r\nHost: y\r\n\r\n`],
      ['obs-fold', `${line()}Host: x\r\nX-A: a\r\n b\r\n\r\n`],
      ['bare LF', `${line()}Host: x\nX-A: a\r\n\r\n`],
      ['bare LF at the end', `${line()}Host: x\n\n`],
      ['bare CR', `${line()}Host: x\rX-A: a\r\n\r\n`],
      ['space before colon', `${line()}Host : x\r\n\r\n`],
      ['no colon', `${line()}Host x\r\n\r\n`],
      ['NUL in a value', `${line()}Host: x\r\nX-A: a\u0000b\r\n\r\n`],
      ['non-ASCII in a value', `${line()}Host: x\r\nX-A: caf\u00e9\r\n\r\n`],
      ['two Authorizations', `${line()}Host: x\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n`],
      ['Connection: upgrade', `${line()}Host: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n`],
      ['Expect', `${line()}Host: x\r\nExpect: 100-continue\r\n\r\n`],
    ];
    for (const [name, head] of others) assert.equal(kind(head), 'other', name);
  });

  it('waits for the rest of a head that could still be a hit, and gives up at the size bound', () => {
    assert.equal(kind(line().slice(0, 20)), 'incomplete');
    assert.equal(kind(`${line()}Host: x\r\n`), 'incomplete');
    assert.equal(kind(`${line()}Host: x\r\n\r`), 'incomplete');
    const huge = `${line()}Host: x\r\nX-Pad: ${'p'.repeat(MAX_HIT_HEAD_BYTES)}\r\n\r\n`;
    assert.equal(kind(huge), 'other');
    assert.equal(kind(huge.slice(0, MAX_HIT_HEAD_BYTES + 10)), 'other', 'a half head past the bound is not waited for');
  });

  it('reads a hit: method, hash, keep-alive rules, Authorization, and where it ends', () => {
    const head = `${line()}Host: x\r\nAuthorization:  Bearer t \r\nContent-Length: 0\r\n\r\n`;
    const next = `${line(undefined, 'HEAD', 'HTTP/1.0')}Connection: keep-alive\r\n\r\n`;
    const buf = Buffer.from(head + next, 'latin1');
    const first = parseHitRequest(buf, 0, '/cache');
    assert.deepEqual(first, { kind: 'hit', ns: 'cas', head: false, hash: H, keepAlive: true, http10: false, authorization: 'Bearer t', end: head.length });
    assert.deepEqual(parseHitRequest(buf, head.length, '/cache'), { kind: 'hit', ns: 'cas', head: true, hash: H, keepAlive: true, http10: true, end: buf.length });
    assert.equal((parse(`${line()}Host: x\r\nConnection: close\r\n\r\n`) as { keepAlive: boolean }).keepAlive, false);
    assert.equal((parse(`${line()}Host: x\r\nconnection: Keep-Alive, Close\r\n\r\n`) as { keepAlive: boolean }).keepAlive, false);
    assert.equal((parse(`${line(undefined, 'GET', 'HTTP/1.0')}\r\n`) as { keepAlive: boolean }).keepAlive, false, 'HTTP/1.0 closes by default');
    assert.equal(kind(`${line()}Host: x\r\nUser-Agent: bazel/7\r\nAccept: */*\r\n\r\n`), 'hit');
    const ac = parse(`${line(`/cache/ac/${H}`, 'HEAD')}Host: x\r\n\r\n`);
    assert.deepEqual(ac, { kind: 'hit', ns: 'ac', head: true, hash: H, keepAlive: true, http10: false, end: line(`/cache/ac/${H}`).length + 1 + 9 + 2 });
    assert.equal((parseHitRequest(Buffer.from(`GET /ac/${H} HTTP/1.1\r\nHost: x\r\n\r\n`), 0, '') as { ns: string }).ns, 'ac', 'no prefix');
  });
});
