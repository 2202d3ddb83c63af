import assert from 'node:assert/strict';
import { EMPTY_DIGEST, digestOf, formatDigest, isDigest, isHash, parseDigest, parseDigestString } from '../../src/cas';

describe('cas digest', () => {
  it('EMPTY_DIGEST is the sha256 of zero bytes', () => {
    assert.deepEqual(digestOf(Buffer.alloc(0)), { ...EMPTY_DIGEST });
  });

  it('accepts only 64 lower-case hex hashes and non-negative integer sizes', () => {
    const h = digestOf('hello').hash;
    assert.ok(isHash(h));
    assert.ok(!isHash(h.toUpperCase()));
    assert.ok(!isHash(h.slice(1)));
    assert.ok(!isHash(`${h}0`));
    assert.ok(isDigest({ hash: h, size: 5 }));
    for (const bad of [{ hash: h, size: -1 }, { hash: h, size: 1.5 }, { hash: h, size: '5' }, { hash: 'zz', size: 1 }, null, 'x']) {
      assert.ok(!isDigest(bad), JSON.stringify(bad));
      assert.throws(() => parseDigest(bad), TypeError);
    }
    assert.deepEqual(parseDigest({ hash: h, size: 5, extra: 1 }), { hash: h, size: 5 });
  });

  it('round-trips the hash/size text form', () => {
    const d = digestOf('abc');
    assert.deepEqual(parseDigestString(formatDigest(d)), d);
    assert.throws(() => parseDigestString(`${d.hash}/x`), TypeError);
    assert.throws(() => parseDigestString(d.hash), TypeError);
  });
});
