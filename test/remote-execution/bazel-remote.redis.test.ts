import assert from 'node:assert/strict';
import { mkdtempSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BuildRecord } from '../../src/master';
import { needBazel, run } from '../helpers/bazel';
import { farmConfigRaw, TestFarm } from '../helpers/farm';

const TOKEN = 'bazel-exec-token-0123456789';

/**
 * Stand-ins for rules_cc and rules_java, which Bazel 4 fetches from the internet (this machine
 * has none) only to re-export its native rules: the C++ toolchain's BUILD files load them.
 */
async function offlineRules(dir: string): Promise<string[]> {
  const rules: Record<string, Record<string, string[]>> = {
    rules_cc: { cc: ['cc_binary', 'cc_library', 'cc_test', 'cc_import', 'cc_toolchain', 'cc_toolchain_suite'] },
    rules_java: { java: ['java_binary', 'java_import', 'java_library', 'java_runtime', 'java_toolchain'] },
  };
  const flags: string[] = [];
  for (const [repo, pkgs] of Object.entries(rules)) {
    const root = path.join(dir, repo);
    await fsp.mkdir(root, { recursive: true });
    await fsp.writeFile(path.join(root, 'WORKSPACE'), '');
    for (const [pkg, names] of Object.entries(pkgs)) {
      await fsp.mkdir(path.join(root, pkg), { recursive: true });
      await fsp.writeFile(path.join(root, pkg, 'BUILD'), 'exports_files(["defs.bzl"])\n');
      await fsp.writeFile(path.join(root, pkg, 'defs.bzl'), names.map((n) => `${n} = native.${n}\n`).join(''));
    }
    flags.push(`--override_repository=${repo}=${root}`);
  }
  return flags;
}

/**
 * Debian's Bazel (bazel-bootstrap 4.2.3) with `--remote_executor` against a master and a real
 * agent: genrules and a cc_binary (the system gcc through Bazel's own C++ toolchain) run as
 * jobs, their outputs match a local build byte for byte, a build after `bazel clean` is all
 * remote cache hits, and a failing action fails the build with its stderr shown by Bazel.
 */
describe('remote execution with a real Bazel (--remote_executor)', function () {
  this.timeout(300_000);
  let farm: TestFarm | undefined;
  let dir: string;
  let ws: string;
  let overrides: string[];

  before(async function () {
    await needBazel(this);
    dir = mkdtempSync(path.join(tmpdir(), 'spillway-bazel-exec-'));
    overrides = await offlineRules(path.join(dir, 'rules'));
    farm = await new TestFarm(
      farmConfigRaw({
        cas: { dir: path.join(dir, 'cas'), prefix: '/cache', tokens: [TOKEN] },
        jobTypes: { remote: { attempts: 1, timeoutSec: 300 }, b2g: {} },
        remoteExecution: { defaultJobType: 'remote' },
      }),
    ).start();
    await farm.agent({ name: 'bazel-agent', jobTypes: ['remote'], executors: 2, casUrl: `${farm.addr.httpUrl}/cache`, casToken: TOKEN, workDir: path.join(dir, 'agent-work') });
    ws = path.join(dir, 'ws');
    await fsp.mkdir(ws, { recursive: true });
    await fsp.writeFile(path.join(ws, 'WORKSPACE'), '');
    await fsp.writeFile(
      path.join(ws, 'BUILD'),
      [
        'genrule(name = "upper", srcs = ["in.txt"], outs = ["upper.txt"], cmd = "tr a-z A-Z < $< > $@")',
        'genrule(name = "counted", srcs = [":upper"], outs = ["gen/counted.txt"], cmd = "wc -c < $< > $@ && cat $< >> $@")',
        'cc_binary(name = "hello", srcs = ["hello.c", "greet.h"])',
        // An output that is a symlink: REAPI reports it as a link (output_file_symlinks for Bazel 4).
        'genrule(name = "linked", srcs = [":upper"], outs = ["linked.txt"], cmd = "ln -s upper.txt $@")',
        '',
      ].join('\n'),
    );
    await fsp.mkdir(path.join(ws, 'broken'));
    await fsp.writeFile(path.join(ws, 'broken', 'BUILD'), 'genrule(name = "broken", outs = ["never.txt"], cmd = "echo spillway-broken-action: no such header >&2; exit 3")\n');
    await fsp.writeFile(path.join(ws, 'in.txt'), 'hello from remote bazel\n');
    await fsp.writeFile(path.join(ws, 'greet.h'), '#define GREETING "hello, remote"\n');
    await fsp.writeFile(path.join(ws, 'hello.c'), '#include <stdio.h>\n#include "greet.h"\nint main(void) { puts(GREETING); return 0; }\n');
  });
  after(async () => {
    await farm?.stop();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  async function bazel(outputRoot: string, args: string[], remote: boolean): Promise<{ code: number; stderr: string }> {
    const flags = remote ? [`--remote_executor=${farm!.addr.grpcUrl}`, `--remote_header=Authorization=Bearer ${TOKEN}`] : [];
    try {
      const { stderr } = await run('bazel', [`--output_user_root=${path.join(dir, outputRoot)}`, '--batch', ...args, ...overrides, ...flags], {
        cwd: ws,
        env: { ...process.env, HOME: dir },
        maxBuffer: 16 * 1024 * 1024,
      });
      return { code: 0, stderr };
    } catch (err) {
      const e = err as { code?: number; stderr?: string };
      return { code: e.code ?? 1, stderr: e.stderr ?? String(err) };
    }
  }

  const OUTPUTS = ['upper.txt', 'gen/counted.txt', 'hello', 'linked.txt'];
  const linkOf = async (o: string) => {
    const p = path.join(ws, 'bazel-bin', o);
    return (await fsp.lstat(p)).isSymbolicLink() ? await fsp.readlink(p) : 'not a symlink';
  };
  const readOutputs = () => Promise.all(OUTPUTS.map((o) => fsp.readFile(path.join(ws, 'bazel-bin', o))));
  const remoteBuilds = async () => (await farm!.api<{ builds: BuildRecord[] }>('/api/builds?limit=1000')).builds.filter((b) => b.type === 'remote');

  it('runs every action on an agent, byte-identical to a local build, and serves the rebuild after clean from the cache', async () => {
    const local = await bazel('root-local', ['build', '//:all'], false);
    assert.equal(local.code, 0, local.stderr);
    const expected = await readOutputs();
    assert.equal(expected[0]!.toString(), 'HELLO FROM REMOTE BAZEL\n');

    const first = await bazel('root-remote', ['build', '//:all'], true);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /processes: .*\d+ remote\b/);
    assert.doesNotMatch(first.stderr, /\d+ (linux-sandbox|local|processwrapper-sandbox)\b/);
    const builds = await remoteBuilds();
    // Three genrules, a compile and a link.
    assert.ok(builds.length >= 5, `remote actions recorded as builds: ${builds.length}`);
    assert.ok(builds.every((b) => b.agent === 'bazel-agent' && b.result === 'success'), JSON.stringify(builds.map((b) => [b.agent, b.result, b.reason])));
    const got = await readOutputs();
    OUTPUTS.forEach((o, i) => assert.ok(got[i]!.equals(expected[i]!), `${o} differs from the local build`));
    assert.equal(await linkOf('linked.txt'), 'upper.txt', 'the symlink output arrives as a symlink');
    const hello = await run(path.join(ws, 'bazel-bin', 'hello'));
    assert.equal(hello.stdout, 'hello, remote\n');

    await bazel('root-remote', ['clean'], true);
    const second = await bazel('root-remote', ['build', '//:all'], true);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /processes: .*\d+ remote cache hit/);
    assert.doesNotMatch(second.stderr, /\d+ remote\b(?! cache)/);
    assert.equal((await remoteBuilds()).length, builds.length, 'nothing ran again');
    const cached = await readOutputs();
    OUTPUTS.forEach((o, i) => assert.ok(cached[i]!.equals(expected[i]!), `${o} from the cache differs`));
    assert.equal(await linkOf('linked.txt'), 'upper.txt', 'a cache hit restores the symlink as a symlink');
  });

  it("fails the build on a failing action and shows the action's stderr", async () => {
    const r = await bazel('root-remote', ['build', '//broken:broken'], true);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /spillway-broken-action: no such header/);
    assert.match(r.stderr, /FAILED: Build did NOT complete successfully/);
    const rec = (await remoteBuilds()).find((b) => b.result === 'failure');
    assert.ok(rec, 'the failing action is a build record with result failure');
    assert.equal(rec.exitCode, 3);
  });
});
