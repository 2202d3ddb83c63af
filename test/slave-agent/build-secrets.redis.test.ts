import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, farmConfigRaw, spawnCli, TestFarm, TOKEN, type CliProcess } from '../helpers/farm';

const NOBODY = 65534;
const CAS_TOKEN = 'cas-token-for-the-hostile-build-0123';

/**
 * What a hostile build does: look for the agent token (and the cache token) everywhere it can
 * read — every process's environment and command line, and the agent's files. It is told the
 * tokens in two halves, so the whole token never appears in its own argv or environment.
 */
const HUNT = `
const fs = require('fs');
const wanted = [process.env.T1 + process.env.T2, process.env.C1 + process.env.C2];
const hits = [];
const has = (buf) => wanted.some((t) => buf.includes(t));
let procs = 0;
for (const p of fs.readdirSync('/proc')) {
  if (!/^\\d+$/.test(p)) continue;
  procs++;
  for (const f of ['environ', 'cmdline']) {
    try { if (has(fs.readFileSync('/proc/' + p + '/' + f))) hits.push('/proc/' + p + '/' + f); } catch {}
  }
}
const walk = (d, depth) => {
  let es;
  try { es = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
  for (const e of es) {
    const q = d + '/' + e.name;
    if (e.isDirectory() && depth < 8) walk(q, depth + 1);
    else if (e.isFile()) { try { if (has(fs.readFileSync(q))) hits.push(q); } catch {} }
  }
};
for (const d of JSON.parse(process.env.DIRS)) { walk(d, 0); try { if (has(fs.readFileSync(d))) hits.push(d); } catch {} }
console.log('uid=' + process.getuid() + ' procs=' + procs + ' hits=' + JSON.stringify(hits));
`;

function halves(): Record<string, string> {
  return { T1: TOKEN.slice(0, 8), T2: TOKEN.slice(8), C1: CAS_TOKEN.slice(0, 8), C2: CAS_TOKEN.slice(8) };
}

describe('slave-agent: builds are strangers to their agent (real processes)', function () {
  this.timeout(60_000);
  let farm: TestFarm;
  let work: string;
  const started: CliProcess[] = [];

  beforeEach(async () => {
    work = mkdtempSync(join(tmpdir(), 'spillway-secrets-'));
    chmodSync(work, 0o711);
    farm = await new TestFarm(farmConfigRaw({ cas: { dir: join(work, 'master-cas'), tokens: [CAS_TOKEN] } })).start();
  });
  afterEach(async () => {
    for (const p of started.splice(0)) p.child.kill('SIGKILL');
    await farm.stop();
    rmSync(work, { recursive: true, force: true });
  });

  function agent(args: string[], opts: { env?: Record<string, string>; uid?: number; stdin?: string } = {}): CliProcess {
    if (opts.uid === undefined && opts.stdin === undefined) {
      const p = spawnCli(['agent', '--master', farm.addr.agentUrl, '--job-types', 'b2g', ...args], opts.env);
      started.push(p);
      return p;
    }
    const child = spawn(process.execPath, [CLI, 'agent', '--master', farm.addr.agentUrl, '--job-types', 'b2g', ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(opts.uid !== undefined && { uid: opts.uid, gid: opts.uid }),
    });
    child.stdin.end(opts.stdin ?? '');
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const p: CliProcess = {
      child,
      output: () => out,
      exited: new Promise((r) => child.once('exit', (code, signal) => r({ code, signal }))),
      waitForOutput: () => Promise.reject(new Error('not used')),
    };
    started.push(p);
    return p;
  }

  async function hunt(dirs: string[]): Promise<{ uid: number; procs: number; hits: string[]; log: string }> {
    const id = await farm.submit({ type: 'b2g', argv: [process.execPath, '-e', HUNT], env: { ...halves(), DIRS: JSON.stringify(dirs) } });
    const record = await farm.finished(id);
    const view = await farm.api<{ log: string }>(`/api/jobs/${id}`);
    assert.equal(record.result, 'success', view.log);
    const m = /uid=(\d+) procs=(\d+) hits=(.*)/.exec(view.log);
    assert.ok(m, view.log);
    return { uid: Number(m[1]), procs: Number(m[2]), hits: JSON.parse(m[3]!) as string[], log: view.log };
  }

  it('an agent started as root runs builds as nobody, which finds neither token anywhere', async () => {
    const secrets = join(work, 'etc-spillway');
    mkdirSync(secrets, { mode: 0o700 });
    writeFileSync(join(secrets, 'agent-token'), `${TOKEN}\n`, { mode: 0o600 });
    writeFileSync(join(secrets, 'cas-token'), CAS_TOKEN, { mode: 0o600 });
    const workDir = join(work, 'agent-work');
    const cacheDir = join(work, 'agent-cache');
    const a = agent(['--name', 'rooted', '--token-file', join(secrets, 'agent-token'), '--cas', farm.addr.httpUrl, '--cas-token-file', join(secrets, 'cas-token'), '--work-dir', workDir, '--cache-dir', cacheDir]);
    await farm.logs.waitFor((e) => e.event === 'agent.registered' && e.agent === 'rooted');
    const dirs = [secrets, join(secrets, 'agent-token'), workDir, cacheDir, work];
    // Control: the hunt works. Run as root, outside the agent, it finds both token files and
    // the agent's environment... of which only the files hold a token here.
    const control = spawnSync(process.execPath, ['-e', HUNT], { env: { ...halves(), DIRS: JSON.stringify(dirs) }, encoding: 'utf8' });
    assert.match(control.stdout, /hits=.*agent-token.*cas-token/, control.stdout + control.stderr);
    const found = await hunt(dirs);
    assert.equal(found.uid, NOBODY, 'the build ran as nobody');
    assert.deepEqual(found.hits, [], `the build found a token: ${found.log}`);
    assert.ok(found.procs > 3, 'the build could see other processes (it is not in a pid namespace), just not their secrets');
    assert.match(readFileSync(`/proc/${a.child.pid}/environ`, 'latin1') + readFileSync(`/proc/${a.child.pid}/cmdline`, 'latin1'), /^(?![\s\S]*test-token-0123456789)/, "the token is in neither the agent's environment nor its command line");
    assert.match(a.output(), /"event":"executor.isolation".*"separation":"user"/);
  });

  it('a token given as --token is scrubbed from the agent\'s command line, with a warning', async () => {
    const a = agent(['--name', 'argv-token', '--token', TOKEN, '--work-dir', join(work, 'w2')]);
    await farm.logs.waitFor((e) => e.event === 'agent.registered' && e.agent === 'argv-token');
    assert.ok(!readFileSync(`/proc/${a.child.pid}/cmdline`, 'latin1').includes(TOKEN));
    assert.match(a.output(), /agent.token-on-command-line/);
    const found = await hunt([join(work, 'w2')]);
    assert.deepEqual(found.hits, [], found.log);
  });

  it('an agent that is not root runs builds in their own pid namespace: the agent\'s environ is out of sight', async () => {
    const home = join(work, 'nobody-home');
    mkdirSync(home, { mode: 0o700 });
    chownSync(home, NOBODY, NOBODY);
    const a = agent(['--name', 'unprivileged', '--work-dir', join(home, 'work'), '--log-format', 'json'], {
      uid: NOBODY,
      // The weakest way to hand over a token: in the environment, which the agent's own user can read.
      env: { SPILLWAY_AGENT_TOKEN: TOKEN, TMPDIR: home },
    });
    await farm.logs.waitFor((e) => e.event === 'agent.registered' && e.agent === 'unprivileged');
    assert.ok(readFileSync(`/proc/${a.child.pid}/environ`, 'latin1').includes(TOKEN), 'control: the token is in the agent\'s environ');
    const found = await hunt([join(home, 'work')]);
    assert.equal(found.uid, NOBODY);
    assert.ok(found.procs <= 3, `the build sees only its own processes (${found.procs})`);
    assert.deepEqual(found.hits, [], found.log);
    assert.match(a.output(), /"event":"executor.isolation".*"separation":"namespace"/);
  });

  it('removes the build dirs a crashed agent left behind when it starts again', async () => {
    const workDir = join(work, 'crashy');
    const tokenFile = join(work, 'token');
    writeFileSync(tokenFile, TOKEN, { mode: 0o600 });
    const first = agent(['--name', 'crashy', '--token-file', tokenFile, '--work-dir', workDir]);
    await farm.logs.waitFor((e) => e.event === 'agent.registered' && e.agent === 'crashy');
    const pidFile = join(work, 'build.pid');
    writeFileSync(pidFile, '');
    chmodSync(pidFile, 0o666);
    const id = await farm.submit({ type: 'b2g', attempts: 1, shell: `echo $$ > ${pidFile}; echo secret > left-behind; exec sleep 300` });
    await farm.logs.waitFor((e) => e.event === 'job.started' && e.jobId === id);
    while (readFileSync(pidFile, 'utf8') === '') await new Promise((r) => setTimeout(r, 20));
    first.child.kill('SIGKILL');
    await first.exited;
    // The build outlived its agent; end it (by its own pid) so only its directory remains.
    process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
    const left = readdirSync(workDir).filter((n) => n !== '.spillway-agent');
    assert.equal(left.length, 1, `one build dir left: ${left.join(', ')}`);
    assert.ok(existsSync(join(workDir, left[0]!, 'left-behind')));

    const second = agent(['--name', 'crashy-2', '--token-file', tokenFile, '--work-dir', workDir]);
    await farm.logs.waitFor((e) => e.event === 'agent.registered' && e.agent === 'crashy-2');
    assert.deepEqual(readdirSync(workDir), ['.spillway-agent']);
    assert.match(second.output(), /agent.workdir-swept/);
  });
});
