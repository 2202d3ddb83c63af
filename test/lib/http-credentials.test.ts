import assert from 'node:assert/strict';
import { HttpRoles, readAuthorization, TokenGrants } from '../../src/lib';

describe('lib: Authorization headers, token grants and HTTP roles', () => {
  it('reads schemes case-insensitively and Basic in base64 and base64url', () => {
    assert.deepEqual(readAuthorization('bearer abc'), { kind: 'bearer', token: 'abc' });
    assert.deepEqual(readAuthorization('  BEARER abc  '), { kind: 'bearer', token: 'abc' });
    const pass = 'p>?>?~';
    for (const enc of ['base64', 'base64url'] as const) {
      const got = readAuthorization(`bAsIc ${Buffer.from(`u:${pass}`).toString(enc)}`);
      assert.equal(got.kind, 'basic');
      assert.ok(got.kind === 'basic' && got.pairs.some((p) => p.user === 'u' && p.password === pass));
    }
    assert.deepEqual(readAuthorization(undefined), { kind: 'none' });
    assert.equal(readAuthorization('Bearer').kind, 'malformed');
    assert.equal(readAuthorization('Bearer a b').kind, 'malformed');
    assert.equal(readAuthorization(['Bearer a', 'Bearer b']).kind, 'malformed');
    assert.equal(readAuthorization(`Bearer ${'x'.repeat(5000)}`).kind, 'malformed');
    assert.equal(readAuthorization('Basic !!!').kind, 'malformed');
  });

  it('finds the first grant of a token', () => {
    const g = new TokenGrants([['aaaa', 1], ['bbbb', 2], ['aaaa', 3]] as const);
    assert.equal(g.find('aaaa'), 1);
    assert.equal(g.find('bbbb'), 2);
    assert.equal(g.find('cccc'), undefined);
    assert.equal(g.find(''), undefined);
  });

  it('orders the roles read < submit < admin and keeps open what has no token', () => {
    const roles = new HttpRoles({ read: [], submit: ['s'.repeat(16)], admin: ['a'.repeat(16)] });
    assert.deepEqual(roles.check('read', undefined), { ok: true });
    assert.equal(roles.check('submit', undefined).ok, false);
    assert.deepEqual(roles.check('submit', `Bearer ${'a'.repeat(16)}`), { ok: true });
    const v = roles.check('admin', `Bearer ${'s'.repeat(16)}`);
    assert.ok(!v.ok && v.status === 403);
    assert.deepEqual(roles.check('open', 'Bearer nonsense'), { ok: true });
    const off = new HttpRoles({ read: [], submit: [], admin: [] });
    assert.deepEqual(off.check('submit', undefined), { ok: true });
    const admin = off.check('admin', undefined);
    assert.ok(!admin.ok && admin.status === 403 && /no admin token is configured/.test(admin.message));
  });
});
