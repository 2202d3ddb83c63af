import assert from 'node:assert/strict';
import { spawnCli, writeConfigFile } from '../helpers/farm';

const AGENT = 'agent-secret-0123456789abcdef';
const SUBMIT = 'submit-secret-0123456789abcdef';
const POOL = 'pool-secret-0123456789abcdef';
const REDIS_PASSWORD = 'redis-pass-0123456789';

/** A farm's config: an EC2 pool two types overflow into, and a local pool with two of its three instances pre-created. */
const farm = () => ({
  // Nothing listens on port 9: the check must not need Redis (nor AWS).
  redis: { url: `redis://spillway:${REDIS_PASSWORD}@127.0.0.1:9` },
  http: { tokens: { submit: [SUBMIT] } },
  agents: { token: AGENT },
  jobTypes: {
    b2g: { overflow: { pool: 'ec2-builders', minBacklog: 3, minOldestWaitSec: 120, maxInstances: 8, priority: 10 } },
    android: { overflow: { pool: 'ec2-builders', minBacklog: 5 } },
    linux64: {},
    win: { overflow: { pool: 'lab', minBacklog: 1 } },
  },
  pools: {
    'ec2-builders': {
      provider: 'ec2',
      maxInstances: 12,
      executorsPerInstance: 2,
      agentTokens: [POOL],
      ec2: { region: 'eu-west-1', launchTemplate: { name: 'spillway-builder' }, subnetIds: ['subnet-1'] },
    },
    lab: { provider: 'local', maxInstances: 3, local: { preCreated: 2 } },
  },
});

describe('cli: spillway config check', function () {
  this.timeout(30_000);

  it('a bad config: exit 2 with every problem at once, and no effective config printed', async () => {
    const raw = farm() as Record<string, unknown>;
    raw.http = { port: 'eighty', tokens: { submit: ['change-me-submit-token'] } };
    raw.jobTypes = { ...farm().jobTypes, android: { overflow: { pool: 'nope' } } };
    raw.cas = { maxSizeMB: 10 };
    const p = spawnCli(['config', 'check', writeConfigFile(raw)]);
    assert.equal((await p.exited).code, 2, p.output());
    const out = p.output();
    assert.match(out, /http\.port: expected a port number/);
    assert.match(out, /http\.tokens\.submit\.0: replace the example token/);
    assert.match(out, /jobTypes\.android\.overflow\.pool: unknown pool "nope"/);
    assert.match(out, /cas: Unrecognized key: "maxSizeMB"/);
    assert.doesNotMatch(out, /is valid|effective configuration/);
  });

  it('a missing file and a YAML syntax error exit 2 with the reason', async () => {
    const missing = spawnCli(['config', 'check', '/nonexistent/spillway.yaml']);
    assert.equal((await missing.exited).code, 2);
    assert.match(missing.output(), /cannot read file/);
    const file = writeConfigFile({});
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, 'jobTypes: [b2g\n');
    const bad = spawnCli(['config', 'check', file]);
    assert.equal((await bad.exited).code, 2);
    assert.match(bad.output(), /YAML/);
  });

  it('a good config: the effective config with defaults filled in, and no secret anywhere in the output', async () => {
    const p = spawnCli(['config', 'check', writeConfigFile(farm())], { SPILLWAY_CAS_TOKEN: 'cas-secret-0123456789abcdef' });
    assert.equal((await p.exited).code, 0, p.output());
    const out = p.output();
    assert.match(out, /is valid/);
    // Defaults the file does not set.
    assert.match(out, /\n {2}lockMs: 30000\n/);
    assert.match(out, /\n {2}bodyLimitBytes: 1048576\n/);
    assert.match(out, /\n {4}quietPeriodMin: 60\n/);
    assert.match(out, /\n {4}suspend: hibernate\n/);
    // Secrets keep their shape (how many tokens), never their value; the env override applied.
    for (const secret of [AGENT, SUBMIT, POOL, REDIS_PASSWORD, 'cas-secret-0123456789abcdef']) assert.ok(!out.includes(secret), `${secret} printed`);
    assert.match(out, /url: redis:\/\/spillway:\[redacted\]@127\.0\.0\.1:9/);
    assert.match(out, /\n {2}token: "\[redacted\]"\n/);
    assert.match(out, /\n {4}submit:\n {6}- "\[redacted\]"\n/);
    assert.match(out, /\n {4}agentTokens:\n {6}- "\[redacted\]"\n/);
    assert.match(out, /\ncas:\n(?: {2}.*\n)* {2}tokens:\n {4}- "\[redacted\]"\n/);
  });

  it('--backlog: the decision the provisioner would take for each job type and pool', async () => {
    const p = spawnCli(['config', 'check', writeConfigFile(farm()), '--backlog', 'b2g=12:300,android=4,linux64=7,win=5']);
    assert.equal((await p.exited).code, 0, p.output());
    const out = p.output();
    // 12 waiting, over both thresholds: 12 executors = 6 instances of 2, launched (the EC2 pool has none yet).
    assert.match(out, /\nb2g +12 waiting {2}-> ec2-builders: backlog 12 beyond on-prem, 0 absorbed by the pool, 12 executor\(s\) wanted\n/);
    assert.match(out, /\nandroid +4 waiting {2}-> ec2-builders: backlog 4 < 5\n/);
    assert.match(out, /\nlinux64 +7 waiting {2}no overflow rule: on-prem only\n/);
    assert.match(out, /\npool ec2-builders: 6 instance\(s\) wanted: undrain 0, wake 0, launch 6\n/);
    // 5 waiting, capped at the pool's 3: the local pool wakes its two suspended instances first, then launches the third.
    assert.match(out, /\nwin +5 waiting {2}-> lab: backlog 5 beyond on-prem, 0 absorbed by the pool, 3 executor\(s\) wanted\n/);
    assert.match(out, /\npool lab: 3 instance\(s\) wanted: undrain 0, wake 2, launch 1\n/);

    const waited = spawnCli(['config', 'check', writeConfigFile(farm()), '--backlog', 'b2g=12']);
    assert.equal((await waited.exited).code, 0, waited.output());
    assert.match(waited.output(), /\nb2g +12 waiting {2}-> ec2-builders: oldest wait 0s < 120s\n/);
    assert.match(waited.output(), /\npool ec2-builders: no job type over its overflow threshold\n/);
  });

  it('--backlog with unknown types, repeats or bad counts: exit 2 naming each', async () => {
    const p = spawnCli(['config', 'check', writeConfigFile(farm()), '--backlog', 'b2g=1,nope=3,b2g=2,android=-1,linux64']);
    assert.equal((await p.exited).code, 2, p.output());
    const out = p.output();
    assert.match(out, /unknown job type "nope"/);
    assert.match(out, /job type "b2g" given twice/);
    assert.match(out, /"android=-1" is not TYPE=COUNT/);
    assert.match(out, /"linux64" is not TYPE=COUNT/);
  });
});
