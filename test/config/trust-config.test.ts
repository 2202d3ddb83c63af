import assert from 'node:assert/strict';
import { parseConfig, parseConfigText } from '../../src/config';
import { configProblems } from '../helpers/config-problems';

const AGENT = 'agent-token-0123456789';
const base = (more: Record<string, unknown> = {}) => ({ agents: { token: AGENT }, jobTypes: { b2g: {} }, ...more });

const problems = configProblems;

describe('config: safer defaults and one-pass problems', () => {
  it('reports type errors, unknown keys and cross-section problems in one pass', () => {
    const p = problems(() =>
      parseConfigText(
        [
          'http: { port: eighty, surprise: 1 }',
          `agents: { token: ${AGENT}, port: x, bogus: 2 }`,
          'jobTypes:',
          '  b2g: { overflow: { pool: nope }, extra: 3 }',
          'pools:',
          '  p: { provider: local, maxInstances: 1, jobTypes: [zz] }',
          'cas: { dir: /tmp/x, what: 4 }',
          'toplevel: 5',
        ].join('\n'),
        {},
      ),
    );
    for (const want of [
      'http.port: expected a port number (0-65535)',
      'http: Unrecognized key: "surprise"',
      'agents.port: expected a port number (0-65535)',
      'agents: Unrecognized key: "bogus"',
      'jobTypes.b2g: Unrecognized key: "extra"',
      'cas: Unrecognized key: "what"',
      '(top level): Unrecognized key: "toplevel"',
      'jobTypes.b2g.overflow.pool: unknown pool "nope"',
      'pools.p.jobTypes: unknown job type "zz"',
    ]) {
      assert.ok(p.includes(want), `missing "${want}" in:\n${p.join('\n')}`);
    }
    assert.ok(p.some((x) => x.startsWith('cas.tokens: nobody could use the cache')), p.join('\n'));
  });

  it('refuses the example placeholder tokens and any token under 16 characters, wherever it is', () => {
    const p = problems(() =>
      parseConfig(
        {
          agents: { token: 'change-me-to-a-long-random-secret', tokens: ['short-agent'] },
          http: { tokens: { read: ['short-read'], submit: ['replace-with-a-submit-token'], admin: ['short-admin'] } },
          adminToken: 'short',
          cas: { dir: '/tmp/c', tokens: ['short-cas'], readTokens: ['short-cas-read'] },
          jobTypes: { b2g: {} },
          pools: { p: { provider: 'local', maxInstances: 1, agentTokens: ['short-pool'] } },
        },
        {},
      ),
    );
    const placeholder = 'replace the example token with a long random secret (e.g. openssl rand -hex 24)';
    const short = 'tokens must be at least 16 characters';
    for (const want of [
      `agents.token: ${placeholder}`,
      `agents.tokens.0: ${short}`,
      `http.tokens.read.0: ${short}`,
      `http.tokens.submit.0: ${placeholder}`,
      `http.tokens.admin.0: ${short}`,
      `adminToken: ${short}`,
      `cas.tokens.0: ${short}`,
      `cas.readTokens.0: ${short}`,
      `pools.p.agentTokens.0: ${short}`,
    ]) {
      assert.ok(p.includes(want), `missing "${want}" in:\n${p.join('\n')}`);
    }
    assert.deepEqual(problems(() => parseConfig(base({ http: { tokens: { read: ['with space 0123456789'] } } }), {})), [
      'http.tokens.read.0: tokens are visible ASCII characters other than ","',
    ]);
  });

  it('binds the agent listener to loopback unless agents.listen.host (or the older agents.host) says otherwise', () => {
    assert.equal(parseConfig(base(), {}).agents.host, '127.0.0.1');
    assert.equal(parseConfig(base({ agents: { token: AGENT, listen: { host: '10.77.0.1' } } }), {}).agents.host, '10.77.0.1');
    assert.equal(parseConfig(base({ agents: { token: AGENT, host: '10.77.0.1' } }), {}).agents.host, '10.77.0.1');
    assert.equal(parseConfig(base({ agents: { token: AGENT, host: '10.77.0.1', listen: { host: '10.77.0.1' } } }), {}).agents.host, '10.77.0.1');
    assert.deepEqual(problems(() => parseConfig(base({ agents: { token: AGENT, host: '0.0.0.0', listen: { host: '10.77.0.1' } } }), {})), [
      'agents.listen.host: agents.host and agents.listen.host disagree; keep one',
    ]);
  });

  it('refuses an open submit route on a host reachable from the network unless the operator opts in', () => {
    for (const host of ['0.0.0.0', '::', '10.0.0.5', 'build-master.internal']) {
      const p = problems(() => parseConfig(base({ http: { host } }), {}));
      assert.equal(p.length, 1, p.join('\n'));
      assert.match(p[0]!, new RegExp(`^http\\.tokens\\.submit: http\\.host "${host.replace(/\./g, '\\.')}" is reachable from the network and no submit or admin token is set`));
    }
    for (const host of ['127.0.0.1', '127.0.1.1', '::1', 'localhost']) assert.equal(parseConfig(base({ http: { host } }), {}).http.host, host);
    assert.equal(parseConfig(base({ http: { host: '0.0.0.0', openSubmit: true } }), {}).http.openSubmit, true);
    assert.equal(parseConfig(base({ http: { host: '0.0.0.0' } }), { SPILLWAY_SUBMIT_TOKEN: 'submit-token-0123456789' }).http.host, '0.0.0.0');
    assert.equal(parseConfig(base({ http: { host: '0.0.0.0' }, adminToken: 'admin-token-0123456789' }), {}).http.host, '0.0.0.0');
  });

  it('takes role and cache tokens from the environment, comma-separated for a rotation, replacing the file', () => {
    const c = parseConfig(base({ http: { tokens: { read: ['file-read-token-0123456789'] } }, adminToken: 'old-admin-token-0123456789', cas: { dir: '/tmp/c' } }), {
      SPILLWAY_READ_TOKEN: 'new-read-token-0123456789, old-read-token-0123456789',
      SPILLWAY_SUBMIT_TOKEN: 'submit-token-0123456789',
      SPILLWAY_ADMIN_TOKEN: 'admin-token-0123456789',
      SPILLWAY_CAS_TOKEN: 'cas-token-0123456789',
      SPILLWAY_CAS_READ_TOKEN: 'cas-read-token-0123456789',
    });
    assert.deepEqual(c.http.tokens, {
      read: ['new-read-token-0123456789', 'old-read-token-0123456789'],
      submit: ['submit-token-0123456789'],
      admin: ['old-admin-token-0123456789', 'admin-token-0123456789'],
    });
    assert.deepEqual([c.cas.tokens, c.cas.readTokens, c.cas.anonymous], [['cas-token-0123456789'], ['cas-read-token-0123456789'], 'none']);
    assert.equal('adminToken' in c, false, 'one list of admin tokens');
  });

  it('gives each token one owner: an agent token is for agents only, an HTTP token has one role', () => {
    const p = problems(() =>
      parseConfig(
        base({
          http: { tokens: { read: [AGENT], submit: ['twice-token-0123456789'], admin: ['twice-token-0123456789'] } },
          cas: { dir: '/tmp/c', tokens: ['twice-token-0123456789'], readTokens: [AGENT] },
        }),
        {},
      ),
    );
    assert.ok(p.includes('http.tokens.read: a token here is also accepted by agents.tokens; each token must have one owner'), p.join('\n'));
    assert.ok(p.includes('http.tokens.admin: a token here is also accepted by http.tokens.submit; each token must have one owner'), p.join('\n'));
    assert.ok(p.some((x) => x.startsWith('cas.readTokens: a token here is also accepted by')), p.join('\n'));
    assert.equal(p.some((x) => x.startsWith('cas.tokens:')), false, 'a cache token may double as an HTTP token');
  });

  it('refuses a cache nobody could use, and takes anonymous access only when asked for', () => {
    assert.match(problems(() => parseConfig(base({ cas: { dir: '/tmp/c' } }), {}))[0]!, /^cas\.tokens: nobody could use the cache/);
    assert.equal(parseConfig(base({ cas: { dir: '/tmp/c', anonymous: 'read-write' } }), {}).cas.anonymous, 'read-write');
    assert.equal(parseConfig(base({ cas: { dir: '/tmp/c', readTokens: ['dev-read-token-0123456789'] } }), {}).cas.anonymous, 'none');
    assert.deepEqual(problems(() => parseConfig(base({ cas: { dir: '/tmp/c', anonymous: 'write' } }), {})), ['cas.anonymous: expected "none", "read" or "read-write"']);
    assert.equal(parseConfig(base(), {}).cas.anonymous, 'none', 'no cache, nothing to refuse');
  });
});
