import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config';
import { configProblems } from '../helpers/config-problems';

const base = (s3: unknown, extra: Record<string, unknown> = {}) => ({
  agents: { token: 'a-long-enough-agent-token-for-tests' },
  jobTypes: { build: {} },
  cas: { dir: '/tmp/cas', tokens: ['a-long-enough-cache-token'], s3, ...extra },
});

describe('config cas.s3', () => {
  it('fills defaults: no prefix, us-east-1, virtual-host style, a bounded queue', () => {
    const c = parseConfig(base({ bucket: 'my-build-cache' }), {});
    assert.deepEqual(c.cas.s3, { bucket: 'my-build-cache', prefix: '', region: 'us-east-1', forcePathStyle: false, maxQueued: 100_000, uploadConcurrency: 4, timeoutMs: 30_000 });
    assert.equal(parseConfig(base(undefined), {}).cas.s3, undefined);
  });

  it('hostile: prefixes that climb, start at the root or hide a second path are refused, as are bad buckets', () => {
    for (const prefix of ['../', 'a/../', '/abs/', 'no-slash', 'a//', './', 'a b/', 'a\\b/']) {
      const p = configProblems(() => parseConfig(base({ bucket: 'my-build-cache', prefix }), {}));
      assert.ok(p.some((m) => m.startsWith('cas.s3.prefix')), `${prefix}: ${p.join('; ')}`);
    }
    for (const bucket of ['', 'ab', 'Upper', '../x', 'a'.repeat(64), '-lead']) {
      const p = configProblems(() => parseConfig(base({ bucket }), {}));
      assert.ok(p.some((m) => m.startsWith('cas.s3.bucket')), `${bucket}: ${p.join('; ')}`);
    }
    const p = configProblems(() => parseConfig(base({ bucket: 'my-build-cache', accessKeyId: 'AKIA...' }), {}));
    assert.ok(p.some((m) => m.includes('accessKeyId')), 'credentials are not config keys');
  });

  it('refuses cas.s3 with cache workers (they commit through the disk index alone)', () => {
    const p = configProblems(() => parseConfig(base({ bucket: 'my-build-cache' }, { workers: 2 }), {}));
    assert.ok(p.some((m) => m.startsWith('cas.s3:') && m.includes('cas.workers')), p.join('; '));
  });
});
