import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfigFile, parseAgentOptions, parseConfig, parseConfigText } from '../../src/config';
import { configProblems } from '../helpers/config-problems';

const problems = configProblems;

describe('config', () => {
  it('loads the example config with defaults filled in, frozen, once its example token is replaced', () => {
    const file = resolve(__dirname, '../../../config/example.yaml');
    assert.deepEqual(problems(() => loadConfigFile(file, {})), ['agents.token: replace the example token with a long random secret (e.g. openssl rand -hex 24)']);
    const c = loadConfigFile(file, { SPILLWAY_AGENT_TOKEN: 'from-the-environment' });
    assert.equal(c.http.port, 8080);
    assert.equal(c.jobTypes.b2g!.timeoutSec, 3600);
    assert.equal(c.builds.lockMs, 30_000);
    assert.ok(Object.isFrozen(c.jobTypes.b2g));
    assert.equal(c.agents.host, '127.0.0.1');
    assert.deepEqual(c.http.tokens, { read: [], submit: [], admin: [] });
    // A Bazel with --remote_executor works with the example plus cas.dir: its actions have a job type.
    assert.equal(c.remoteExecution.defaultJobType, 'remote');
    assert.ok(c.jobTypes.remote);
  });

  it('loads the hybrid EC2 example: overflow rules, pools, warm windows (its example tokens replaced)', () => {
    const file = resolve(__dirname, '../../../config/hybrid-ec2.yaml');
    const env = { SPILLWAY_AGENT_TOKEN: 'from-the-environment' };
    const refused = problems(() => loadConfigFile(file, env));
    assert.ok(refused.length > 0 && refused.every((x) => x.endsWith(': replace the example token with a long random secret (e.g. openssl rand -hex 24)')), refused.join('\n'));
    const c = parseConfigText(readFileSync(file, 'utf8').replaceAll('replace-with-', 'real-secret-'), env, file);
    assert.equal(c.jobTypes.b2g!.overflow?.pool, 'ec2-builders');
    assert.equal(c.jobTypes.linux64!.overflow, undefined);
    assert.equal(c.pools['ec2-builders']!.suspend, 'hibernate');
    assert.equal(c.pools['ec2-builders']!.warmWindows[0]!.count, 2);
    assert.equal(c.pools['ec2-builders']!.ec2?.launchTemplate.name, 'spillway-builder');
    assert.deepEqual(c.agents.allow, ['10.8.0.0/24', '192.168.10.0/24']);
    assert.equal(c.pools['ec2-builders']!.agentTokens.length, 1);
    assert.equal(c.pools['ec2-builders']!.reconcileSec, 60);
  });

  it('pools.<name>.reconcileSec: 60 by default, a positive integer', () => {
    const pool = (over: Record<string, unknown>) => ({ agents: { token: 'long-enough-token' }, jobTypes: { b2g: {} }, pools: { p: { provider: 'local', maxInstances: 1, ...over } } });
    assert.equal(parseConfig(pool({}), {}).pools.p!.reconcileSec, 60);
    assert.equal(parseConfig(pool({ reconcileSec: 15 }), {}).pools.p!.reconcileSec, 15);
    assert.ok(problems(() => parseConfig(pool({ reconcileSec: 0 }), {})).includes('pools.p.reconcileSec: expected a positive integer'));
  });

  it('agents.ingest and memory.heapGrowingPercent: defaults, and every bad value reported with its path', () => {
    const cfg = (agents: Record<string, unknown>, memory?: Record<string, unknown>) => ({ agents: { token: 'long-enough-token', ...agents }, jobTypes: { b2g: {} }, ...(memory && { memory }) });
    const c = parseConfig(cfg({}), {});
    assert.deepEqual(c.agents.ingest, { framesPerConnection: 4, maxMb: 64 });
    assert.equal(c.memory.heapGrowingPercent, 30);
    const found = problems(() => parseConfig(cfg({ ingest: { framesPerConnection: 0, maxMb: -1, extra: 1 } }, { heapGrowingPercent: 1.5 }), {}));
    for (const path of ['agents.ingest.framesPerConnection', 'agents.ingest.maxMb', 'agents.ingest', 'memory.heapGrowingPercent']) {
      assert.ok(found.some((p) => p.startsWith(`${path}:`)), `${path} in ${found.join('; ')}`);
    }
  });

  it('reports unknown pools, bad cron expressions and missing ec2 sections with their paths', () => {
    const p = problems(() =>
      parseConfig(
        {
          agents: { token: 'long-enough-token' },
          jobTypes: { b2g: { overflow: { pool: 'nope' } } },
          pools: { p: { provider: 'ec2', maxInstances: 2, warmWindows: [{ cron: 'every morning', count: 1 }] } },
        },
        {},
      ),
    );
    assert.ok(p.includes('jobTypes.b2g.overflow.pool: unknown pool "nope"'), p.join('\n'));
    assert.ok(p.includes('pools.p.ec2: required for provider "ec2"'), p.join('\n'));
    assert.ok(p.includes('pools.p.warmWindows.0.cron: not a valid cron expression'), p.join('\n'));
  });

  it('reports every problem at once, each with its path', () => {
    const p = problems(() =>
      parseConfigText(
        ['http: { port: 99999 }', 'agents: { token: short }', 'jobTypes:', '  b2g: { timeoutSec: -5 }', '  "bad name": {}', 'surprise: 1'].join('\n'),
        {},
      ),
    );
    assert.ok(p.includes('jobTypes.b2g.timeoutSec: expected a positive integer'), p.join('\n'));
    assert.ok(p.some((x) => x.startsWith('http.port: expected a port number')), p.join('\n'));
    assert.ok(p.some((x) => x.startsWith('agents.token: tokens must be at least 16 characters')), p.join('\n'));
    assert.ok(p.some((x) => x.includes('bad name')), p.join('\n'));
    assert.ok(p.some((x) => x.includes('surprise')), p.join('\n'));
  });

  it('asks for a token when neither the file nor SPILLWAY_AGENT_TOKEN gives one', () => {
    const p = problems(() => parseConfig({ jobTypes: { b2g: {} } }, {}));
    assert.deepEqual(p, ['agents.token: required (or set SPILLWAY_AGENT_TOKEN, or list agents.tokens)']);
  });

  it('applies environment overrides and validates them', () => {
    const c = parseConfig(
      { jobTypes: { b2g: {} } },
      { REDIS_URL: 'redis://10.0.0.5:6380', SPILLWAY_HTTP_PORT: '9000', SPILLWAY_AGENT_PORT: '0', SPILLWAY_AGENT_TOKEN: 'from-the-environment' },
    );
    assert.equal(c.redis.url, 'redis://10.0.0.5:6380');
    assert.equal(c.http.port, 9000);
    assert.equal(c.agents.port, 0);
    assert.equal(c.agents.token, 'from-the-environment');
    const p = problems(() => parseConfig({ jobTypes: { b2g: {} } }, { SPILLWAY_HTTP_PORT: 'eighty', SPILLWAY_AGENT_TOKEN: 'x'.repeat(16) }));
    assert.deepEqual(p, ['SPILLWAY_HTTP_PORT: expected a port number (0-65535), got "eighty"']);
  });

  it('reports YAML syntax errors and unreadable files', () => {
    assert.match(problems(() => parseConfigText('jobTypes: [unclosed', {}))[0]!, /^YAML: /);
    assert.match(problems(() => loadConfigFile('/nonexistent/spillway.yaml', {}))[0]!, /cannot read file/);
  });

  it('validates agent options', () => {
    const p = problems(() => parseAgentOptions({ master: 'http://x', token: '', name: 'a b', jobTypes: [], location: 'moon' }));
    assert.ok(p.some((x) => x.startsWith('master: expected a ws://')), p.join('\n'));
    assert.ok(p.some((x) => x.startsWith('token: required')), p.join('\n'));
    assert.ok(p.some((x) => x.startsWith('name: ')), p.join('\n'));
    assert.ok(p.some((x) => x.startsWith('jobTypes: at least one')), p.join('\n'));
    assert.ok(p.some((x) => x.startsWith('location: expected "onprem" or "cloud"')), p.join('\n'));
  });
  it('accepts agent token rotation, allow-lists, TLS and pool tokens, and reports their problems', () => {
    const c = parseConfig(
      {
        agents: { tokens: ['new-token-0123456781', 'old-token-0123456782'], allow: ['10.77.0.0/24', 'fd00::/8'], tls: { cert: '/c.pem', key: '/k.pem' } },
        jobTypes: { b2g: { overflow: { pool: 'p' } } },
        pools: { p: { provider: 'ec2', maxInstances: 1, agentTokens: ['pool-token-0123456783'], ec2: { region: 'eu-west-1', launchTemplate: { name: 't' }, subnetIds: ['s'] } } },
      },
      { SPILLWAY_AGENT_TOKEN: 'env-token-0123456780' },
    );
    assert.equal(c.agents.token, 'env-token-0123456780', 'the single token stays the one handed out');
    assert.deepEqual(c.agents.tokens, ['env-token-0123456780', 'new-token-0123456781', 'old-token-0123456782']);
    assert.deepEqual(c.agents.registrationRate, { burst: 20, perMinute: 60 });
    assert.equal(c.agents.tls?.requireClientCert, false);
    assert.deepEqual(c.pools.p!.agentTokens, ['pool-token-0123456783']);
    assert.equal(parseConfig({ agents: { tokens: ['only-token-0123456789'] }, jobTypes: { b2g: {} } }, {}).agents.token, 'only-token-0123456789');

    const p = problems(() =>
      parseConfig(
        {
          agents: { token: 'shared-token-0123456789', allow: ['10.77.0.1/24', 'vpn'], tls: { cert: '/c', key: '/k', requireClientCert: true } },
          jobTypes: { b2g: { overflow: { pool: 'p' } } },
          pools: { p: { provider: 'local', maxInstances: 1, agentTokens: ['shared-token-0123456789', 'short'] } },
        },
        {},
      ),
    );
    assert.ok(p.includes('agents.allow.0: "10.77.0.1/24" has host bits set; the network is 10.77.0.0/24'), p.join('\n'));
    assert.ok(p.some((x) => x.startsWith('agents.allow.1: "vpn" is not a CIDR network')), p.join('\n'));
    assert.ok(p.includes('agents.tls.ca: required when requireClientCert is true'), p.join('\n'));
    assert.ok(p.includes('pools.p.agentTokens.1: tokens must be at least 16 characters'), p.join('\n'));
  });

  it('refuses a token shared by two owners and a local pool behind a TLS listener', () => {
    const p = problems(() =>
      parseConfig(
        {
          agents: { token: 'shared-token-0123456789', tls: { cert: '/c', key: '/k' } },
          jobTypes: { b2g: { overflow: { pool: 'p' } } },
          pools: { p: { provider: 'local', maxInstances: 1, agentTokens: ['shared-token-0123456789'] } },
        },
        {},
      ),
    );
    assert.ok(p.includes('pools.p.agentTokens: a token here is also accepted by agents.tokens; each token must have one owner'), p.join('\n'));
    assert.ok(p.includes('pools.p.provider: a local pool cannot be used with agents.tls (its agents get no certificates)'), p.join('\n'));
    assert.equal(p.join('\n').includes('shared-token-0123456789'), false, 'problems never quote a token');
  });

  it('checks the agent TLS flags', () => {
    const base = { master: 'ws://m:8081', token: 't', name: 'a', jobTypes: ['b2g'] };
    const p = problems(() => parseAgentOptions({ ...base, caFile: '/ca.pem', certFile: '/c.pem' }));
    assert.ok(p.includes('keyFile: --cert and --key go together'), p.join('\n'));
    assert.ok(p.includes('master: --ca, --cert and --key need a wss:// master URL'), p.join('\n'));
    assert.equal(parseAgentOptions({ ...base, master: 'wss://m:8081', caFile: '/ca.pem' }).caFile, '/ca.pem');
  });

  it('disk and cpu options of agents and job types: defaults and problems', () => {
    const base = { master: 'ws://m:8081', token: 't', name: 'a', jobTypes: ['b2g'] };
    const o = parseAgentOptions(base);
    assert.equal(o.minFreeMb, 1024);
    assert.equal(o.diskLimit, 'auto');
    assert.equal(o.buildDiskMb, undefined);
    assert.equal(o.buildCpuMax, undefined);
    const p = problems(() => parseAgentOptions({ ...base, buildDiskMb: 0, buildCpuMax: 1.5, minFreeMb: -1, diskLimit: 'quota' }));
    assert.ok(p.some((x) => x.startsWith('buildDiskMb: ')), p.join('\n'));
    assert.ok(p.includes('buildCpuMax: at most 1 (100% of the cores)'), p.join('\n'));
    assert.ok(p.some((x) => x.startsWith('minFreeMb: ')), p.join('\n'));
    assert.ok(p.some((x) => x.startsWith('diskLimit: expected "auto" or "watch"')), p.join('\n'));
    assert.equal(parseConfig({ agents: { token: 'test-token-0123456789' }, jobTypes: { b2g: { diskMb: 2048 } } }, {}).jobTypes.b2g!.diskMb, 2048);
    assert.ok(problems(() => parseConfig({ agents: { token: 'test-token-0123456789' }, jobTypes: { b2g: { diskMb: -5 } } }, {})).some((x) => x.startsWith('jobTypes.b2g.diskMb')));
  });
});
