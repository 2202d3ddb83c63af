import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, farmConfigRaw, spawnCli, TestFarm, TOKEN } from '../helpers/farm';

const DEPLOY = join(__dirname, '..', '..', '..', 'deploy');
const UNITS = ['spillway-master.service', 'spillway-agent.service'];
const BIN = '/usr/local/bin/spillway';
const read = (f: string) => readFileSync(join(DEPLOY, f), 'utf8');

/** `KEY=value` lines of a unit or an environment file (the last one wins, as in systemd). */
function settings(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

function verify(dir: string, files: string[]): { status: number | null; output: string } {
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...files.map((f) => join(dir, f))], { encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

describe('deploy/: the systemd units of the master and of an agent', function () {
  this.timeout(60_000);
  let dir: string;
  before(function () {
    if (spawnSync('systemd-analyze', ['--version']).error) {
      console.log('      skipped: systemd-analyze is not installed (apt-get install systemd; .ci/run does)');
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'spillway-units-'));
    // verify checks that ExecStart's program exists: the installed bin is not here, so the units
    // are verified with only that path changed, to an executable that runs this checkout's CLI.
    const bin = join(dir, 'spillway');
    writeFileSync(bin, `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`);
    chmodSync(bin, 0o755);
    for (const u of UNITS) writeFileSync(join(dir, u), read(u).split(BIN).join(bin));
  });
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  it('systemd-analyze verify passes on both, without a single warning', () => {
    for (const u of UNITS) assert.ok(read(u).includes(`ExecStart=${BIN} `), `${u} runs the installed bin`);
    const r = verify(dir, UNITS);
    assert.deepEqual(r, { status: 0, output: '' });
  });

  it('verify is not blind: a bad kill mode and an unknown key are reported', () => {
    writeFileSync(join(dir, 'broken.service'), read('spillway-agent.service').split(BIN).join(join(dir, 'spillway')).replace('KillMode=mixed', 'KillMode=mixd\nRestartt=always'));
    const r = verify(dir, ['broken.service']);
    assert.match(r.output, /kill mode/i);
    assert.match(r.output, /Unknown key/i);
  });

  it('the master runs as the spillway user, hardened; the agent as root (its builds as the build user), draining on stop', () => {
    const master = settings(read('spillway-master.service'));
    assert.equal(master.get('User'), 'spillway');
    assert.equal(master.get('EnvironmentFile'), '/etc/spillway/master.env');
    for (const [k, v] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes'], ['RestartPreventExitStatus', '2']]) {
      assert.equal(master.get(k!), v, `master ${k}`);
    }
    const agent = settings(read('spillway-agent.service'));
    assert.equal(agent.get('User'), undefined, 'root: so builds can run as another user and join their cgroups');
    // The agent writes /sys/fs/cgroup/spillway and loop-mounts disk images: these would break that.
    for (const k of ['ProtectControlGroups', 'PrivateDevices', 'PrivateUsers', 'DynamicUser', 'ProtectKernelModules']) assert.equal(agent.get(k), undefined, `agent ${k}`);
    assert.equal(agent.get('KillMode'), 'mixed', 'SIGTERM to the agent only: it drains, its builds finish');
    assert.ok(Number(agent.get('TimeoutStopSec')) > 3600, 'longer than a build of the default timeout');
    assert.equal(agent.get('NoNewPrivileges'), 'yes');
    assert.equal(agent.get('LoadCredential'), 'agent-token:/etc/spillway/agent-token');
    assert.equal(agent.get('RestartPreventExitStatus'), '2');
  });

  it("the agent unit's command line, with deploy/agent.env's settings, starts an agent that registers", async () => {
    const unit = settings(read('spillway-agent.service'));
    const env = settings(read('agent.env'));
    const exec = unit.get('ExecStart')!;
    for (const name of exec.matchAll(/\$\{?(\w+)\}?/g)) assert.ok(env.has(name[1]!), `${name[1]} is in deploy/agent.env`);
    assert.doesNotMatch(read('agent.env'), /TOKEN/, 'no secret in the environment file');

    const farm = await new TestFarm(farmConfigRaw()).start();
    const root = mkdtempSync(join(tmpdir(), 'spillway-unit-agent-'));
    // As StateDirectory= makes /var/lib/spillway (0755): the build user must pass through to its build dir.
    chmodSync(root, 0o755);
    const credentials = join(root, 'credentials');
    mkdirSync(credentials, { mode: 0o500 });
    writeFileSync(join(credentials, 'agent-token'), `${TOKEN}\n`, { mode: 0o400 });
    const values = new Map([...env, ['SPILLWAY_AGENT_MASTER', farm.addr.agentUrl], ['SPILLWAY_AGENT_JOB_TYPES', 'b2g'], ['SPILLWAY_AGENT_NAME', 'unit-agent']]);
    // systemd's expansion: ${VAR} is one word, $VAR is split at spaces, %d the credentials directory.
    const argv = exec
      .split(/\s+/)
      .flatMap((w) => (/^\$\w+$/.test(w) ? values.get(w.slice(1))!.split(/\s+/) : [w.replace(/\$\{(\w+)\}/g, (_m, n: string) => values.get(n)!)]))
      .map((w) => w.replace('%d', credentials).replace('/var/lib/spillway', join(root, 'state')).replace('/var/cache/spillway', join(root, 'cache')));
    assert.equal(argv[0], BIN);
    const agent = spawnCli(argv.slice(1));
    try {
      await agent.waitForOutput(/agent\.welcomed/);
      const { agents } = (await (await fetch(`${farm.addr.httpUrl}/api/agents`)).json()) as { agents: Array<{ name: string; location: string }> };
      const me = agents.find((a) => a.name === 'unit-agent');
      assert.ok(me, JSON.stringify(agents));
      assert.equal(me.location, 'onprem');
    } finally {
      agent.child.kill('SIGTERM');
      await agent.exited;
      await farm.stop();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
