import assert from 'node:assert/strict';
import { farmConfigRaw, spawnCli, TestFarm } from '../helpers/farm';

const READ = 'cli-read-token-0123456789';
const SUBMIT = 'cli-submit-token-0123456789';

describe('cli: --token and SPILLWAY_TOKEN against a master with role tokens', function () {
  this.timeout(60_000);
  let farm: TestFarm;
  before(async () => {
    farm = await new TestFarm(farmConfigRaw({ http: { host: '127.0.0.1', port: 0, tokens: { read: [READ], submit: [SUBMIT] } } })).start();
    await farm.agent({ name: 'a' });
  });
  after(() => farm.stop());

  it('submit: refused without a token (exit 2, saying how to pass one), accepted with --token or SPILLWAY_TOKEN', async () => {
    const bare = spawnCli(['submit', '--master', farm.addr.httpUrl, '--type', 'b2g', '--', 'true'], { SPILLWAY_TOKEN: '' });
    assert.equal((await bare.exited).code, 2, bare.output());
    assert.match(bare.output(), /master answered 401: job submission needs a submit or admin token .*pass --token or set SPILLWAY_TOKEN/);

    const read = spawnCli(['submit', '--master', farm.addr.httpUrl, '--type', 'b2g', '--token', READ, '--', 'true']);
    assert.equal((await read.exited).code, 2);
    assert.match(read.output(), /master answered 403: a read token cannot submit, cancel or retry jobs/);

    const flag = spawnCli(['submit', '--master', farm.addr.httpUrl, '--type', 'b2g', '--wait', '--token', SUBMIT, '--', 'sh', '-c', 'echo via-flag']);
    assert.equal((await flag.exited).code, 0, flag.output());
    assert.match(flag.output(), /via-flag/);

    const env = spawnCli(['submit', '--master', farm.addr.httpUrl, '--type', 'b2g', '--wait', '--', 'sh', '-c', 'echo via-env'], { SPILLWAY_TOKEN: SUBMIT });
    assert.equal((await env.exited).code, 0, env.output());
    assert.match(env.output(), /via-env/);
  });

  it('status: needs a read (or stronger) token once the master has read tokens', async () => {
    const bare = spawnCli(['status', '--master', farm.addr.httpUrl, '--json'], { SPILLWAY_TOKEN: '' });
    assert.equal((await bare.exited).code, 2);
    assert.match(bare.output(), /master answered 401/);
    const ok = spawnCli(['status', '--master', farm.addr.httpUrl, '--json'], { SPILLWAY_TOKEN: READ });
    assert.equal((await ok.exited).code, 0, ok.output());
    assert.deepEqual((JSON.parse(ok.output()) as { agents: Array<{ name: string }> }).agents.map((a) => a.name), ['a']);
  });
});
