import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config';
import { redactConfig } from '../../src/cli/config-report';
import { redisTarget } from '../../src/cli/redis-connections';
import { configProblems as problems } from '../helpers/config-problems';

const base = { agents: { token: 'an-agent-token-0123456789' }, jobTypes: { b2g: {} } };
const withRedis = (redis: unknown) => ({ ...base, redis });
const sentinel = { sentinels: ['10.0.0.11:26379', '[fd00::12]:26380', 'redis-s3.internal:26381'], masterName: 'spillway' };

describe('config: redis, by URL or through Sentinel', () => {
  it('refuses hostile and malformed sentinel settings, every problem at once', () => {
    assert.deepEqual(problems(() => parseConfig(withRedis({ url: 'redis://a:6379', sentinel }), {})), [
      'redis: give either redis.url (one server) or redis.sentinel (a primary found through Sentinel), not both (is REDIS_URL set?)',
    ]);
    assert.deepEqual(
      [...problems(() => parseConfig(withRedis({ sentinel: { sentinels: ['10.0.0.1', 'host:0', 'a b:1', '10.0.0.2:99999', 42], masterName: '', tls: { cert: '/c.pem' }, sentinelTls: 'yes', extra: 1 } }), {}))].sort(),
      [
        'redis.sentinel: Unrecognized key: "extra"',
        'redis.sentinel.sentinels.0: "10.0.0.1" is not a sentinel address "host:port" (port 1-65535; IPv6 as [addr]:port)',
        'redis.sentinel.sentinels.1: "host:0" is not a sentinel address "host:port" (port 1-65535; IPv6 as [addr]:port)',
        'redis.sentinel.sentinels.2: "a b:1" is not a sentinel address "host:port" (port 1-65535; IPv6 as [addr]:port)',
        'redis.sentinel.sentinels.3: "10.0.0.2:99999" is not a sentinel address "host:port" (port 1-65535; IPv6 as [addr]:port)',
        'redis.sentinel.sentinels.4: expected a sentinel address "host:port"',
        'redis.sentinel.masterName: expected the master name the sentinels monitor',
        'redis.sentinel.tls: cert and key go together',
        'redis.sentinel.sentinelTls: expected true or a mapping of PEM files (ca, cert, key) and servername',
      ].sort(),
    );
    assert.deepEqual(problems(() => parseConfig(withRedis({ sentinel: { sentinels: [], masterName: 'm' } }), {})), [
      'redis.sentinel.sentinels: list at least one sentinel (three or more for a quorum)',
    ]);
    assert.deepEqual(problems(() => parseConfig(withRedis({ sentinel: { masterName: 'm' } }), {})), [
      'redis.sentinel.sentinels: expected a list of sentinel addresses "host:port"',
    ]);
    // REDIS_URL in the environment next to a file's sentinel section is a conflict, not a silent pick.
    assert.deepEqual(problems(() => parseConfig(withRedis({ sentinel }), { REDIS_URL: 'redis://b:6379' })), [
      'redis: give either redis.url (one server) or redis.sentinel (a primary found through Sentinel), not both (is REDIS_URL set?)',
    ]);
  });

  it('keeps the URL form as it was, the default included', () => {
    const c = parseConfig(base, {});
    assert.equal(c.redis.url, 'redis://127.0.0.1:6379');
    assert.equal(c.redis.sentinel, undefined);
    assert.deepEqual(redisTarget(c.redis, () => assert.fail('no PEM to read')), { url: 'redis://127.0.0.1:6379', options: {} });
  });

  it('parses the sentinel form, from the file and from the environment, into ioredis options', () => {
    const c = parseConfig(withRedis({ sentinel: { ...sentinel, tls: { ca: '/ca.pem', servername: 'redis.internal' }, sentinelTls: true } }), {
      REDIS_PASSWORD: 'data-nodes-secret',
      REDIS_SENTINEL_PASSWORD: 'sentinels-secret',
    });
    assert.equal(c.redis.url, undefined);
    const read: string[] = [];
    const { url, options } = redisTarget(c.redis, (p) => (read.push(p), Buffer.from(`pem of ${p}`)));
    assert.equal(url, undefined);
    assert.deepEqual(read, ['/ca.pem']);
    assert.deepEqual(options.sentinels, [
      { host: '10.0.0.11', port: 26379 },
      { host: 'fd00::12', port: 26380 },
      { host: 'redis-s3.internal', port: 26381 },
    ]);
    assert.equal(options.name, 'spillway');
    assert.equal(options.password, 'data-nodes-secret');
    assert.equal(options.sentinelPassword, 'sentinels-secret');
    assert.deepEqual(options.tls, { ca: Buffer.from('pem of /ca.pem'), servername: 'redis.internal' });
    assert.equal(options.enableTLSForSentinelMode, true);
    assert.deepEqual(options.sentinelTLS, {});
    assert.equal(options.failoverDetector, true);
    // `config check` prints the effective config: neither password shows.
    const shown = JSON.stringify(redactConfig(c));
    assert.ok(!shown.includes('data-nodes-secret') && !shown.includes('sentinels-secret'), shown);
    assert.match(shown, /"password":"\[redacted\]".*"sentinelPassword":"\[redacted\]"/);

    const env = parseConfig(base, { REDIS_SENTINELS: '10.0.0.1:26379, 10.0.0.2:26379', REDIS_SENTINEL_MASTER: 'farm' });
    assert.deepEqual(env.redis.sentinel?.sentinels, [
      { host: '10.0.0.1', port: 26379 },
      { host: '10.0.0.2', port: 26379 },
    ]);
    assert.equal(env.redis.sentinel?.masterName, 'farm');
    // Without TLS settings the connections stay plain TCP.
    const plain = redisTarget(env.redis, () => assert.fail('no PEM to read')).options;
    assert.equal(plain.tls, undefined);
    assert.equal(plain.sentinelTLS, undefined);
  });
});
