import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { stringify } from 'yaml';
import { CLI, farmConfigRaw, spawnCli, TestFarm, TOKEN, writeConfigFile } from '../helpers/farm';
import { waitUntil } from '../helpers/wait-until';
import { redisUrl } from '../setup/root-hooks';

describe('cli: the spillway command', function () {
  this.timeout(60_000);

  it('master: exits 2 and lists every config problem with its path', async () => {
    const file = writeConfigFile({ agents: { token: 'long-enough-token' }, jobTypes: { b2g: { timeoutSec: 0 }, linux64: { attempts: 'x' } } });
    const p = spawnCli(['master', '--config', file]);
    const { code } = await p.exited;
    assert.equal(code, 2);
    assert.match(p.output(), /jobTypes\.b2g\.timeoutSec: expected a positive integer/);
    assert.match(p.output(), /jobTypes\.linux64\.attempts: expected a positive integer/);
  });

  it('master: exits 2 on a YAML syntax error', async () => {
    const file = writeConfigFile({});
    writeFileSync(file, 'jobTypes: [b2g\n');
    const p = spawnCli(['master', '--config', file]);
    assert.equal((await p.exited).code, 2);
    assert.match(p.output(), /YAML/);
  });

  it('master + agent + submit --wait + status, as separate processes; the master stops on SIGTERM', async () => {
    const raw = farmConfigRaw();
    const file = writeConfigFile(raw);
    const master = spawnCli(['master', '--config', file], { SPILLWAY_HTTP_PORT: '0', SPILLWAY_AGENT_PORT: '0' });
    const line = await master.waitForOutput(/HTTP API (\S+), agents connect to (\S+)/);
    const [, httpUrl, agentUrl] = /HTTP API (\S+), agents connect to (\S+)/.exec(line)!;
    const agent = spawnCli(['agent', '--master', agentUrl!, '--name', 'cli-agent', '--job-types', 'b2g', '--token', TOKEN]);
    await agent.waitForOutput(/agent\.welcomed/);

    const ok = spawnCli(['submit', '--master', httpUrl!, '--type', 'b2g', '--wait', '--', 'sh', '-c', 'echo compiled; echo warn >&2']);
    assert.equal((await ok.exited).code, 0, ok.output());
    assert.match(ok.output(), /compiled/);
    assert.match(ok.output(), /warn/);
    assert.match(ok.output(), /completed on cli-agent \(on-prem\)/);

    const bad = spawnCli(['submit', '--master', httpUrl!, '--type', 'b2g', '--wait', '--shell', '--', 'echo', 'failing;', 'exit', '5']);
    assert.equal((await bad.exited).code, 5, bad.output());
    assert.match(bad.output(), /failing/);
    assert.match(bad.output(), /exited 5/);

    const noWait = spawnCli(['submit', '--master', httpUrl!, '--type', 'b2g', '--', 'true']);
    assert.equal((await noWait.exited).code, 0);
    assert.match(noWait.output().trim(), /^[0-9a-f-]{36}$/);

    const unknown = spawnCli(['submit', '--master', httpUrl!, '--type', 'nope', '--', 'true']);
    assert.equal((await unknown.exited).code, 2);
    assert.match(unknown.output(), /unknown job type "nope"/);

    const status = spawnCli(['status', '--master', httpUrl!, '--json']);
    assert.equal((await status.exited).code, 0);
    const s = JSON.parse(status.output()) as { agents: Array<{ name: string }>; builds: unknown[]; queues: Array<{ type: string }> };
    assert.deepEqual(s.agents.map((a) => a.name), ['cli-agent']);
    assert.ok(s.builds.length >= 2);
    assert.deepEqual(s.queues.map((q) => q.type).sort(), ['b2g', 'linux64']);

    const table = spawnCli(['status', '--master', httpUrl!]);
    assert.equal((await table.exited).code, 0);
    assert.match(table.output(), /RECENT BUILDS/);
    assert.match(table.output(), /cli-agent/);

    agent.child.kill('SIGTERM');
    assert.equal((await agent.exited).code, 0, agent.output());
    master.child.kill('SIGTERM');
    assert.equal((await master.exited).code, 0, master.output());
  });

  it('submit: a clear error and exit 1 when the master cannot be reached', async () => {
    const p = spawnCli(['submit', '--master', 'http://127.0.0.1:1', '--type', 'b2g', '--', 'true']);
    assert.equal((await p.exited).code, 1);
    assert.match(p.output(), /cannot reach the master at http:\/\/127\.0\.0\.1:1/);
  });

  it('agent: exits non-zero with a clear message when the token is wrong', async () => {
    const farm = await new TestFarm().start();
    try {
      const p = spawnCli(['agent', '--master', farm.addr.agentUrl, '--name', 'intruder', '--job-types', 'b2g', '--token', 'not-the-token']);
      const { code } = await p.exited;
      assert.notEqual(code, 0);
      assert.match(p.output(), /unauthorized/i);
    } finally {
      await farm.stop();
    }
  });

  it('demo: quiet by default (summaries and cloud events, not every build), its hints run as printed, and it stops after --jobs', async () => {
    const p = spawnCli(['demo', '--jobs', '16', '--interval', '250', '--summary-every', '1'], { REDIS_URL: redisUrl(), SPILLWAY_HTTP_PORT: '0', SPILLWAY_AGENT_PORT: '0' });
    // The printed hint, run as shown (minus `npx`, which runs this same main.js): it reaches the demo's master.
    await p.waitForOutput(/submit a build: .*\n/);
    const hint = /in another terminal: npx spillway (status --master \S+)$/m.exec(p.output())!;
    const submitHint = /submit a build: SPILLWAY_TOKEN=(\w+) npx spillway (submit .*)$/m.exec(p.output())!;
    assert.ok(hint && submitHint, p.output());
    const status = spawnCli(hint[1]!.split(' '));
    const submit = spawnCli(submitHint[2]!.split(' '), { SPILLWAY_TOKEN: submitHint[1]! });
    assert.equal((await status.exited).code, 0, status.output());
    assert.match(status.output(), /b2g[\s\S]*linux64/);
    assert.equal((await submit.exited).code, 0, submit.output());
    assert.match(submit.output(), /hello/);
    const { code } = await p.exited;
    assert.equal(code, 0, p.output());
    assert.match(p.output(), /HTTP API http:\/\/127\.0\.0\.1:\d+/);
    assert.equal(p.output().match(/^ {2}(ok|FAIL) /gm), null, `no build lines without --verbose:\n${p.output()}`);
    // Summaries: counts of builds, where they ran and what waits; the last one covers every build.
    const summaries = [...p.output().matchAll(/^ {2}\[ *\d+s\] builds: (\d+) ok, (\d+) failed.* · ran on-prem (\d+), cloud (\d+) · waiting (\d+)$/gm)];
    assert.ok(summaries.length >= 1, p.output());
    const last = summaries[summaries.length - 1]!;
    // 16 builds, the hint's among them (it counts too).
    assert.ok(Number(last[1]) + Number(last[2]) >= 16 && Number(last[3]) + Number(last[4]) === Number(last[1]) + Number(last[2]), last[0]);
    // Job 7 (the 4th linux64 one, before the first burst) fails on purpose, and the demo says so.
    assert.ok(Number(last[2]) >= 1, last[0]);
    assert.match(last[0], /\d+ failed \(all deliberate\)/);
    assert.match(p.output(), /not successful \(all deliberate\); stopping/);
  });

  it('demo: a Ctrl-C (SIGINT to the whole process group, as a terminal sends it) stops it cleanly, its private Redis last', async () => {
    const child = spawn(process.execPath, [CLI, 'demo', '--interval', '100'], {
      env: { ...process.env, REDIS_URL: '', SPILLWAY_HTTP_PORT: '0', SPILLWAY_AGENT_PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await waitUntil(() => /^ {2}\[ *\d+s\] builds: [1-9]/m.test(out), { timeoutMs: 20_000, what: 'a summary with builds' });
    const redisPort = /private redis-server on redis:\/\/127\.0\.0\.1:(\d+)/.exec(out)![1]!;
    process.kill(-child.pid!, 'SIGINT');
    assert.equal(await exited, 0, out);
    assert.match(out, /build\(s\) finished/);
    assert.doesNotMatch(out, /^ {2}(error|warn): /m, out);
    // Its Redis is gone too: nothing listens on its port any more.
    const listening = await new Promise<boolean>((r) => {
      const sock = connect(Number(redisPort), '127.0.0.1', () => (sock.destroy(), r(true)));
      sock.on('error', () => r(false));
    });
    assert.equal(listening, false, `redis-server still listens on ${redisPort}`);
  });

  it('demo --verbose: a line per build, the deliberate failure said to be deliberate', async () => {
    const p = spawnCli(['demo', '--jobs', '8', '--interval', '50', '--verbose'], { REDIS_URL: redisUrl(), SPILLWAY_HTTP_PORT: '0', SPILLWAY_AGENT_PORT: '0' });
    const { code } = await p.exited;
    assert.equal(code, 0, p.output());
    assert.equal(p.output().match(/^ {2}(ok|FAIL) /gm)?.length, 8, p.output());
    assert.match(p.output(), /^ {2}FAIL linux64 .*\(deliberate: sample load exits 3\)$/m);
    assert.equal(p.output().match(/^ {2}FAIL /gm)?.length, 1, p.output());
    assert.match(p.output(), /on-prem/);
  });

  it('master: SIGHUP re-reads the overflow rules and the heap settings without a restart, and keeps running on a bad file', async () => {
    const raw = farmConfigRaw({ pools: { cloud: { provider: 'local', maxInstances: 1 } } });
    (raw.jobTypes as Record<string, Record<string, unknown>>).b2g!.overflow = { pool: 'cloud', enabled: false };
    raw.log = { level: 'debug', format: 'json' };
    const file = writeConfigFile(raw);
    const master = spawnCli(['master', '--config', file], { SPILLWAY_HTTP_PORT: '0', SPILLWAY_AGENT_PORT: '0' });
    const line = await master.waitForOutput(/HTTP API (\S+),/);
    const httpUrl = /HTTP API (\S+),/.exec(line)![1]!;
    const rules = async () => ((await (await fetch(`${httpUrl}/api/rules`)).json()) as { rules: Record<string, { enabled: boolean }> }).rules;
    assert.equal((await rules()).b2g!.enabled, false);

    (raw.jobTypes as Record<string, Record<string, unknown>>).b2g!.overflow = { pool: 'cloud', enabled: true, minBacklog: 4 };
    writeFileSync(file, stringify(raw));
    master.child.kill('SIGHUP');
    await master.waitForOutput(/reloaded/);
    const after = await rules();
    assert.equal(after.b2g!.enabled, true);
    assert.equal((after.b2g as unknown as { minBacklog: number }).minBacklog, 4);

    // The heap's growth is applied on the spot, not left for a restart.
    raw.memory = { heapGrowingPercent: 30 };
    writeFileSync(file, stringify(raw));
    master.child.kill('SIGHUP');
    await master.waitForOutput(/"flag":"--heap-growing-percent=30"/);
    const both = await master.waitForOutput(/spillway master: reloaded[^\n]*\n[\s\S]*spillway master: reloaded[^\n]*\n/);
    assert.doesNotMatch(both.split('spillway master: reloaded').pop()!, /memory/);

    writeFileSync(file, 'jobTypes: [broken\n');
    master.child.kill('SIGHUP');
    await master.waitForOutput(/not reloaded, keeping the running config/);
    assert.equal((await rules()).b2g!.enabled, true);
    master.child.kill('SIGTERM');
    assert.equal((await master.exited).code, 0, master.output());
  });
});
