import assert from 'node:assert/strict';
import { mkdtempSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { needBazel, run } from '../helpers/bazel';
import { farmConfigRaw, TestFarm } from '../helpers/farm';

const TOKEN = 'bazel-grpc-token-0123456789';

/**
 * Debian's Bazel (bazel-bootstrap) against the master's REAPI listener with
 * `--remote_cache=grpc://` and the token as `--remote_header`. The workspace is the one the
 * HTTP cache test uses (genrules only: cc_binary needs rules_cc from the internet). Builds run
 * from fresh output roots, so whatever they do not run comes from the master.
 */
describe('the master\'s cache over gRPC with a real Bazel (--remote_cache=grpc://)', function () {
  this.timeout(240_000);
  let farm: TestFarm | undefined;
  let dir: string;

  before(async function () {
    await needBazel(this);
    dir = mkdtempSync(path.join(tmpdir(), 'spillway-bazel-grpc-'));
    farm = await new TestFarm(farmConfigRaw({ cas: { dir: path.join(dir, 'cas'), prefix: '/cache', tokens: [TOKEN] } })).start();
  });
  after(async () => {
    await farm?.stop();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  async function bazel(workspace: string, outputRoot: string, cacheFlags: string[]): Promise<string> {
    const args = [`--output_user_root=${path.join(dir, outputRoot)}`, '--batch', 'build', '//:all', ...cacheFlags, '--remote_upload_local_results=true'];
    const { stderr } = await run('bazel', args, { cwd: workspace, env: { ...process.env, HOME: dir }, maxBuffer: 16 * 1024 * 1024 });
    return stderr;
  }
  const summaryOf = (stderr: string): string => /^INFO: \d+ process(?:es)?: (.*)\.$/m.exec(stderr)?.[1] ?? '';

  it('stores the first build, serves a clean rebuild entirely from the cache, byte for byte, and shares it with the HTTP cache', async () => {
    const ws = path.join(dir, 'ws');
    await fsp.mkdir(ws, { recursive: true });
    await fsp.writeFile(path.join(ws, 'WORKSPACE'), '');
    await fsp.writeFile(
      path.join(ws, 'BUILD'),
      [
        'genrule(name = "upper", srcs = ["in.txt"], outs = ["upper.txt"], cmd = "tr a-z A-Z < $< > $@")',
        'genrule(name = "twice", srcs = [":upper"], outs = ["twice.txt"], cmd = "cat $< $< > $@")',
        'genrule(name = "blob", outs = ["blob.bin"], cmd = "head -c 3000000 /dev/zero | tr \'\\\\0\' x > $@")',
        'genrule(name = "hello_bin", srcs = ["hello.c"], outs = ["hello"], cmd = "cc -O2 -o $@ $<", executable = True)',
        '',
      ].join('\n'),
    );
    await fsp.writeFile(path.join(ws, 'in.txt'), 'hello from bazel over grpc\n');
    await fsp.writeFile(path.join(ws, 'hello.c'), '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n');
    const grpcUrl = farm!.addr.grpcUrl;
    assert.ok(grpcUrl?.startsWith('grpc://127.0.0.1:'), grpcUrl);
    const grpcFlags = [`--remote_cache=${grpcUrl}`, `--remote_header=Authorization=Bearer ${TOKEN}`];
    const outputs = ['upper.txt', 'twice.txt', 'blob.bin', 'hello'];
    const read = async () => Promise.all(outputs.map((o) => fsp.readFile(path.join(ws, 'bazel-bin', o))));

    const first = await bazel(ws, 'root-1', grpcFlags);
    assert.match(first, /Build completed successfully/);
    assert.doesNotMatch(summaryOf(first), /remote cache hit/);
    const built = await read();
    assert.equal(built[0]!.toString(), 'HELLO FROM BAZEL OVER GRPC\n');
    assert.equal(built[2]!.length, 3_000_000);

    await run('bazel', [`--output_user_root=${path.join(dir, 'root-1')}`, '--batch', 'clean'], { cwd: ws, env: { ...process.env, HOME: dir } });
    const second = await bazel(ws, 'root-1', grpcFlags);
    const summary = summaryOf(second);
    assert.match(summary, /\b4 remote cache hit\b/, `the rebuild's summary: ${summary}`);
    assert.doesNotMatch(summary, /sandbox|local|worker|linux-sandbox|processwrapper/, `something ran again: ${summary}`);
    const rebuilt = await read();
    outputs.forEach((o, i) => assert.ok(rebuilt[i]!.equals(built[i]!), `${o} differs`));
    assert.equal((await run(path.join(ws, 'bazel-bin', 'hello'))).stdout, 'hello\n');

    // The HTTP cache serves the very entries Bazel wrote over gRPC (same store, same AC bytes).
    const httpCache = `${farm!.addr.httpUrl.replace('http://', `http://ci:${TOKEN}@`)}/cache`;
    const overHttp = await bazel(ws, 'root-2', [`--remote_cache=${httpCache}`]);
    assert.match(summaryOf(overHttp), /\b4 remote cache hit\b/, `over HTTP: ${summaryOf(overHttp)}`);

    // A wrong token is refused; Bazel then fails the remote cache calls and hits nothing.
    const refused = await bazel(ws, 'root-3', [`--remote_cache=${grpcUrl}`, '--remote_header=Authorization=Bearer wrong-token-000000000']).catch((e: { stderr: string }) => e.stderr);
    assert.match(refused, /UNAUTHENTICATED|wrong cache token/);
    assert.doesNotMatch(summaryOf(refused), /remote cache hit/);
  });
});
