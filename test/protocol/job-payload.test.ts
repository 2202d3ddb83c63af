import assert from 'node:assert/strict';
import { checkJobPayload } from '../../src/protocol';

describe('job payload: env names', () => {
  const reason = (env: Record<string, string>) => {
    const r = checkJobPayload({ argv: ['true'], env }, 'b2g');
    return r.ok ? undefined : r.reason;
  };

  it('accepts ordinary names, including empty values and "=" in values', () => {
    assert.equal(reason({ PATH: '/usr/bin', EMPTY: '', OPTS: 'a=b' }), undefined);
  });

  it('refuses an empty name, "=" or NUL in a name and NUL in a value, each with its reason', () => {
    assert.equal(reason({ '': 'x' }), 'invalid job data: env: a name is empty');
    assert.equal(reason({ 'A=B': 'x' }), 'invalid job data: env: name "A=B" contains "="');
    assert.equal(reason({ 'A\0B': 'x' }), 'invalid job data: env: name "A\\u0000B" contains a NUL byte');
    assert.equal(reason({ A: 'x\0y' }), 'invalid job data: env: the value of "A" contains a NUL byte');
  });

  it('names every bad entry in one reason', () => {
    assert.equal(reason({ 'X=1': 'a', OK: 'b', '': 'c' }), 'invalid job data: env: name "X=1" contains "="; env: a name is empty');
  });
});
