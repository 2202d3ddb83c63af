import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { loadConfigFile, parseAgentOptions, parseConfig, parseConfigText } from '../../src/config';
import { ConfigError } from '../../src/lib';

const problems = (fn: () => unknown): readonly string[] => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail('expected a ConfigError');
};

describe('config', () => {
  it('loads the example config with defaults filled in, frozen', () => {
    const c = loadConfigFile(resolve(__dirname, '../../../config/example.yaml'), {});
    assert.equal(c.http.port, 8080);
    assert.equal(c.jobTypes.b2g!.timeoutSec, 3600);
    assert.equal(c.builds.lockMs, 30_000);
    assert.ok(Object.isFrozen(c.jobTypes.b2g));
  });

  it('loads the hybrid EC2 example: overflow rules, pools, warm windows', () => {
    const c = loadConfigFile(resolve(__dirname, '../../../config/hybrid-ec2.yaml'), { SPILLWAY_AGENT_TOKEN: 'from-the-environment' });
    assert.equal(c.jobTypes.b2g!.overflow?.pool, 'ec2-builders');
    assert.equal(c.jobTypes.linux64!.overflow, undefined);
    assert.equal(c.pools['ec2-builders']!.suspend, 'hibernate');
    assert.equal(c.pools['ec2-builders']!.warmWindows[0]!.count, 2);
    assert.equal(c.pools['ec2-builders']!.ec2?.launchTemplate.name, 'spillway-builder');
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
    assert.ok(p.some((x) => x.startsWith('agents.token: must be at least 8 characters')), p.join('\n'));
    assert.ok(p.some((x) => x.includes('bad name')), p.join('\n'));
    assert.ok(p.some((x) => x.includes('surprise')), p.join('\n'));
  });

  it('asks for a token when neither the file nor SPILLWAY_AGENT_TOKEN gives one', () => {
    const p = problems(() => parseConfig({ jobTypes: { b2g: {} } }, {}));
    assert.deepEqual(p, ['agents.token: required (or set SPILLWAY_AGENT_TOKEN)']);
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
    const p = problems(() => parseConfig({ jobTypes: { b2g: {} } }, { SPILLWAY_HTTP_PORT: 'eighty', SPILLWAY_AGENT_TOKEN: 'xxxxxxxxxx' }));
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
});
