import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { uniquePrefix } from '../setup/unique';
import { redisUrl } from '../setup/root-hooks';

const ROOT = join(__dirname, '..', '..', '..');
const AGENT_TOKEN = 'packaged-agent-token-0123456789';

interface Run {
  code: number | null;
  out: string;
}

/** Runs the installed `spillway` as a user would: its bin, with node, from another directory. */
function spillway(bin: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: tmpdir(), env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.once('exit', (code) => resolve({ code, out }));
  });
}

/**
 * `npm pack` of this checkout, installed the way the README's "Deploying a farm" says into a
 * temp prefix: the tarball unpacked as prefix/lib/node_modules/spillway and its production
 * dependencies installed from the tarball's npm-shrinkwrap.json with `npm ci --omit=dev`.
 * `--offline` takes every package from the local npm cache (which `npm ci` of this checkout
 * filled), so no network is needed; scripts are not run, as npm 11 runs none it was not told to.
 * The pack uses dist/ as the test run compiled it (a real `npm pack` runs `prepare`, tsc, first).
 */
describe('the npm package: packed, installed without dev dependencies, run from its install', function () {
  this.timeout(120_000);
  let dir: string;
  let files: string[];
  let pkg: string;
  let bin: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'spillway-pack-'));
    // npm pack's own steps but `prepare` (tsc), which the test run has done: prepack puts the lock
    // file in as npm-shrinkwrap.json, postpack removes it again.
    execFileSync('npm', ['run', 'prepack'], { cwd: ROOT, stdio: 'pipe' });
    let packed: Array<{ filename: string; files: Array<{ path: string }> }>;
    try {
      packed = JSON.parse(execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8' })) as typeof packed;
    } finally {
      execFileSync('npm', ['run', 'postpack'], { cwd: ROOT, stdio: 'pipe' });
    }
    files = packed[0]!.files.map((f) => f.path);
    const lib = join(dir, 'prefix', 'lib', 'node_modules');
    mkdirSync(lib, { recursive: true });
    execFileSync('tar', ['xzf', join(dir, packed[0]!.filename), '-C', lib]);
    pkg = join(lib, 'spillway');
    renameSync(join(lib, 'package'), pkg);
    execFileSync('npm', ['ci', '--omit=dev', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: pkg, stdio: 'pipe' });
    const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    bin = join(pkg, manifest.bin.spillway!);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('ships the compiled code and the files it reads at run time, and no TypeScript or tests', () => {
    assert.ok(!existsSync(join(ROOT, 'npm-shrinkwrap.json')), 'postpack removed the copy of the lock file');
    for (const f of ['dist/src/cli/main.js', 'dist/src/cli/cache-worker.js', 'proto/build/bazel/remote/execution/v2/remote_execution.proto', 'dist/package.json', 'npm-shrinkwrap.json', 'config/example.yaml', 'vpn/cloud-init.yaml',
      'src/http/dashboard-assets/index.html', 'deploy/spillway-master.service', 'deploy/spillway-agent.service', 'deploy/iam-policy.json', 'README.md']) {
      assert.ok(files.includes(f), `${f} not packed`);
    }
    assert.deepEqual(files.filter((f) => f.endsWith('.ts') || f.startsWith('dist/test/') || f.startsWith('dist/bench/') || f === 'tsconfig.json'), []);
  });

  it('installs no dev dependency, and its prepare script compiles nothing where there is no source', () => {
    const installed = [...readdirSync(join(pkg, 'node_modules')), ...readdirSync(join(pkg, 'node_modules', '@types')).map((t) => `@types/${t}`)];
    // Every devDependency of package.json that no run-time dependency needs too (winston's logform
    // needs @types/triple-beam, protobufjs @types/node): the lock marks those `dev`.
    const { devDependencies } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    const lock = JSON.parse(readFileSync(join(pkg, 'npm-shrinkwrap.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.keys(devDependencies).filter((d) => lock.packages[`node_modules/${d}`]?.dev === true);
    assert.ok(devOnly.includes('typescript') && devOnly.includes('mocha') && devOnly.includes('playwright-core'), devOnly.join(', '));
    for (const dev of devOnly) assert.ok(!installed.includes(dev), `${dev} installed`);
    for (const name of installed) assert.notEqual(lock.packages[`node_modules/${name}`]?.dev, true, `${name} is only a dev dependency`);
    assert.ok(installed.includes('fastify') && installed.includes('bullmq'));
    // What a first `npx spillway` or an install that runs scripts would do: no tsc needed.
    execFileSync('npm', ['run', 'prepare'], { cwd: pkg, stdio: 'pipe' });
    assert.ok(!existsSync(join(pkg, 'tsconfig.json')));
  });

  it('spillway --help and config check config/example.yaml run from the install', async () => {
    const help = await spillway(bin, ['--help']);
    assert.equal(help.code, 0, help.out);
    assert.match(help.out, /config +configuration tools/);
    const example = join(pkg, 'config', 'example.yaml');
    // The example's agent token is a placeholder, refused until the real one comes from the environment.
    const refused = await spillway(bin, ['config', 'check', example], { SPILLWAY_AGENT_TOKEN: '' });
    assert.equal(refused.code, 2, refused.out);
    assert.match(refused.out, /agents\.token: replace the example token/);
    const ok = await spillway(bin, ['config', 'check', example, '--backlog', 'b2g=12,linux64=0'], { SPILLWAY_AGENT_TOKEN: AGENT_TOKEN });
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /is valid/);
    assert.ok(!ok.out.includes(AGENT_TOKEN));
  });

  it('vpn init and the master (dashboard, cache workers, gRPC included) find their templates, assets and protos in the install', async () => {
    const out = join(dir, 'vpn');
    const vpn = await spillway(bin, ['vpn', 'init', '--out', out, '--hub-endpoint', 'vpn.example.com:51820'], { SPILLWAY_AGENT_TOKEN: AGENT_TOKEN });
    assert.equal(vpn.code, 0, vpn.out);
    assert.match(readFileSync(join(out, 'peers', 'peer-01.user-data.yaml'), 'utf8'), /spillway-agent\.service/);

    const p = uniquePrefix();
    const config = join(dir, 'master.yaml');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(config, stringify({ redis: { url: redisUrl(), queuePrefix: `${p}-bull`, keyPrefix: `${p}-sw` }, http: { port: 0 }, agents: { port: 0, token: AGENT_TOKEN }, jobTypes: { b2g: {} }, cas: { dir: join(dir, 'cas'), anonymous: 'read', workers: 1 }, grpc: { port: 0 } }));
    const master = spawn(process.execPath, [bin, 'master', '--config', config], { cwd: tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let err = '';
        master.stderr.on('data', (b: Buffer) => {
          err += b.toString();
          const m = /HTTP API (\S+),/.exec(err);
          // The gRPC listener (its protos read from the install) is announced after the HTTP one.
          if (m && /REAPI \(Bazel --remote_cache=\) grpc:\/\//.test(err)) resolve(m[1]!);
        });
        master.once('exit', (code) => reject(new Error(`master exited ${code}: ${err}`)));
      });
      const page = await fetch(`${url}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<html/i);
      // A cache request on a new connection: served by the cache worker process of the install.
      const miss = await fetch(`${url}/cas/${'0'.repeat(64)}`, { headers: { connection: 'close' } });
      assert.equal(miss.status, 404);
      assert.equal(miss.headers.get('x-spillway-cache-worker'), '0');
    } finally {
      master.kill('SIGTERM');
      await new Promise((r) => master.once('exit', r));
    }
  });
});
