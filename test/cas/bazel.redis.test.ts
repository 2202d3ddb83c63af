import assert from 'node:assert/strict';
import { mkdtempSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { needBazel, run } from '../helpers/bazel';
import { farmConfigRaw, TestFarm } from '../helpers/farm';

const TOKEN = 'bazel-cache-token-0123456789';

/**
 * Debian's Bazel (bazel-bootstrap) against the master's cache: `--remote_cache` with the
 * credentials in the URL (Bazel sends them as Basic auth), genrules that transform text and
 * compile a C program with the system compiler (cc_binary would need rules_cc from the
 * internet, which this machine does not reach). The
 * second build starts from an empty output root, so everything it does not run comes from the
 * master. Bazel runs asynchronously: the master answers on this process's event loop.
 */
describe('the master\'s cache with a real Bazel (--remote_cache)', function () {
  this.timeout(180_000);
  let farm: TestFarm | undefined;
  let dir: string;

  before(async function () {
    await needBazel(this);
    dir = mkdtempSync(path.join(tmpdir(), 'spillway-bazel-'));
    farm = await new TestFarm(farmConfigRaw({ cas: { dir: path.join(dir, 'cas'), prefix: '/cache', tokens: [TOKEN] } })).start();
  });
  after(async () => {
    await farm?.stop();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  async function bazel(workspace: string, outputRoot: string, cacheUrl: string): Promise<string> {
    const args = [
      `--output_user_root=${path.join(dir, outputRoot)}`,
      '--batch',
      'build',
      '//:all',
      `--remote_cache=${cacheUrl}`,
      // The action cache must accept uploads from this client (it is the CI's cache here).
      '--remote_upload_local_results=true',
    ];
    const { stderr } = await run('bazel', args, { cwd: workspace, env: { ...process.env, HOME: dir }, maxBuffer: 16 * 1024 * 1024 });
    return stderr;
  }

  it('stores the first build, and serves the second one from the cache: nothing runs again', async () => {
    const ws = path.join(dir, 'ws');
    await fsp.mkdir(ws, { recursive: true });
    await fsp.writeFile(path.join(ws, 'WORKSPACE'), '');
    await fsp.writeFile(
      path.join(ws, 'BUILD'),
      [
        'genrule(name = "upper", srcs = ["in.txt"], outs = ["upper.txt"], cmd = "tr a-z A-Z < $< > $@")',
        'genrule(name = "hello_bin", srcs = ["hello.c"], outs = ["hello"], cmd = "cc -O2 -o $@ $<", executable = True)',
        '',
      ].join('\n'),
    );
    await fsp.writeFile(path.join(ws, 'in.txt'), 'hello from bazel\n');
    await fsp.writeFile(path.join(ws, 'hello.c'), '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n');
    const cache = `${farm!.addr.httpUrl.replace('http://', `http://ci:${TOKEN}@`)}/cache`;

    const first = await bazel(ws, 'root-1', cache);
    assert.match(first, /Build completed successfully/);
    assert.doesNotMatch(first, /remote cache hit/);
    const upper1 = await fsp.readFile(path.join(ws, 'bazel-bin', 'upper.txt'), 'utf8');
    assert.equal(upper1, 'HELLO FROM BAZEL\n');
    const ac = await fsp.readdir(path.join(dir, 'cas', 'action-cache', 'ac-raw'));
    assert.ok(ac.length >= 2, `Bazel's action results are stored raw (${ac.length})`);

    // A fresh output root: no local state at all. Every action is a remote cache hit.
    const second = await bazel(ws, 'root-2', cache);
    // Bazel's summary, e.g. "3 processes: 2 remote cache hit, 1 internal.": both genrules hit.
    const summary = /^INFO: \d+ process(?:es)?: (.*)\.$/m.exec(second)?.[1] ?? '';
    assert.match(summary, /\b2 remote cache hit\b/, `the second build's summary: ${summary}`);
    assert.doesNotMatch(summary, /sandbox|local|worker/, `something ran again: ${summary}`);
    assert.equal(await fsp.readFile(path.join(ws, 'bazel-bin', 'upper.txt'), 'utf8'), upper1);
    const { stdout } = await run(path.join(ws, 'bazel-bin', 'hello'));
    assert.equal(stdout, 'hello\n');

    // Wrong credentials: Bazel is refused (401), says so, and builds locally instead.
    const refused = await bazel(ws, 'root-3', cache.replace(TOKEN, 'wrong-token-000000000'));
    assert.match(refused, /Reading from Remote Cache:\s*401 Unauthorized/);
    const refusedSummary = /^INFO: \d+ process(?:es)?: (.*)\.$/m.exec(refused)?.[1] ?? '';
    assert.doesNotMatch(refusedSummary, /remote cache hit/, 'nothing is served without the token');
  });
});
