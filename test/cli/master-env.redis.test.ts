import assert from 'node:assert/strict';
import { farmConfigRaw, spawnCli, TestFarm, TOKEN } from '../helpers/farm';

const SUBMIT = 'env-submit-token-0123456789';
/** Nothing listens here: a command that used it could not reach a master. */
const NOWHERE = 'http://127.0.0.1:9';

describe('cli: SPILLWAY_MASTER and SPILLWAY_TOKEN (SPILLWAY_AGENT_MASTER for the agent) instead of flags', function () {
  this.timeout(60_000);
  let farm: TestFarm;
  before(async () => {
    farm = await new TestFarm(farmConfigRaw({ http: { host: '127.0.0.1', port: 0, tokens: { submit: [SUBMIT] } } })).start();
  });
  after(() => farm.stop());

  it('without --master or the variable, every command that needs one exits 2 naming the flag, and its help names the variable', async () => {
    for (const [args, variable] of [
      [['status'], 'SPILLWAY_MASTER'],
      [['submit', '--type', 'b2g', '--', 'true'], 'SPILLWAY_MASTER'],
      [['run', '--type', 'b2g', '--inputs', '.', '--', 'true'], 'SPILLWAY_MASTER'],
      [['agent', '--name', 'x', '--job-types', 'b2g', '--token', TOKEN], 'SPILLWAY_AGENT_MASTER'],
    ] as const) {
      // Unset here (spawnCli passes the test's own environment on): an empty value is a value.
      assert.equal(process.env[variable], undefined, `unset ${variable} to run this test`);
      const p = spawnCli([...args]);
      assert.equal((await p.exited).code, 2, `${args[0]}: ${p.output()}`);
      assert.match(p.output(), /required option '--master <url>' not specified/, args[0]);
      const help = spawnCli([args[0], '--help']);
      assert.equal((await help.exited).code, 0);
      assert.match(help.output(), new RegExp(`\\(env:\\s+${variable}\\)`), args[0]);
    }
  });

  it('agent, submit --wait and status find the master through the environment alone', async () => {
    const agent = spawnCli(['agent', '--name', 'env-agent', '--job-types', 'b2g', '--token', TOKEN], { SPILLWAY_AGENT_MASTER: farm.addr.agentUrl });
    try {
      await agent.waitForOutput(/agent\.welcomed/);
      const env = { SPILLWAY_MASTER: farm.addr.httpUrl, SPILLWAY_TOKEN: SUBMIT };
      const submit = spawnCli(['submit', '--type', 'b2g', '--wait', '--', 'sh', '-c', 'echo found-by-env'], env);
      assert.equal((await submit.exited).code, 0, submit.output());
      assert.match(submit.output(), /found-by-env/);
      assert.match(submit.output(), /completed on env-agent/);
      const status = spawnCli(['status', '--json'], env);
      assert.equal((await status.exited).code, 0, status.output());
      assert.deepEqual((JSON.parse(status.output()) as { agents: Array<{ name: string }> }).agents.map((a) => a.name), ['env-agent']);
    } finally {
      agent.child.kill('SIGTERM');
      await agent.exited;
    }
  });

  it('--master on the command line wins over SPILLWAY_MASTER, and the variable really is used when the flag is absent', async () => {
    const flag = spawnCli(['status', '--master', farm.addr.httpUrl, '--json'], { SPILLWAY_MASTER: NOWHERE });
    assert.equal((await flag.exited).code, 0, flag.output());
    const env = spawnCli(['status', '--json'], { SPILLWAY_MASTER: NOWHERE });
    assert.equal((await env.exited).code, 1, env.output());
    assert.match(env.output(), /127\.0\.0\.1:9/);
  });
});
