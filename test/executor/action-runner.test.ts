import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { buildTree, CasClient, DiskStore, digestOf, digestOfFile, type Digest, type UploadItem } from '../../src/cas';
import { executeAction, NOT_STARTED_EXIT, TIMED_OUT_EXIT, type ActionDeps, type ActionInput } from '../../src/executor';
import { FakeClock } from '../fakes/fake-clock';
import { recordingLogger, tempRoot } from '../cas/cas-fixtures';
import { startCasServer, type CasServer } from '../cas/http-server';

const PATH = '/usr/local/bin:/usr/bin:/bin';

describe('executor/action-runner', () => {
  let server: CasServer;
  let root: string;
  let cleanup: () => Promise<void>;
  let local: DiskStore;
  let remote: CasClient;
  let gets: string[];
  let builds = 0;

  beforeEach(async () => {
    server = await startCasServer();
    ({ root, cleanup } = await tempRoot('action'));
    local = await DiskStore.open({ root: path.join(root, 'local'), maxBytes: 64 * 1024 * 1024, clock: new FakeClock(), log: recordingLogger().log });
    gets = [];
    const counting: typeof fetch = (input, init) => {
      const url = String(input instanceof Request ? input.url : input);
      if ((init?.method ?? 'GET') === 'GET' && url.includes('/cas/')) gets.push(url);
      return fetch(input, init);
    };
    remote = new CasClient({ baseUrl: server.url, fetch: counting });
  });
  afterEach(async () => {
    await local.close();
    await server.close();
    await cleanup();
  });

  /** Writes `files` (path -> [content, mode]) into a fresh dir and uploads its tree to the master. */
  async function uploadTree(files: Record<string, [string, number]>): Promise<Digest> {
    const dir = path.join(root, `src-${builds++}`);
    for (const [rel, [content, mode]] of Object.entries(files)) {
      await fsp.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
      await fsp.writeFile(path.join(dir, rel), content, { mode });
      await fsp.chmod(path.join(dir, rel), mode);
    }
    const tree = await buildTree(dir);
    const items: UploadItem[] = [
      ...[...tree.directories.values()].map((data) => ({ digest: digestOf(data), data })),
      ...(await Promise.all([...tree.files.values()].map(async (p) => ({ digest: await digestOfFile(p), path: p })))),
    ];
    await remote.uploadMissing(items);
    return tree.root;
  }

  async function freshWorkDir(): Promise<string> {
    const d = path.join(root, `work-${builds++}`);
    await fsp.mkdir(d);
    return d;
  }

  function deps(workDir: string, output: string[] = []): ActionDeps {
    return { local, remote, workDir, baseEnv: { PATH }, agent: 'agent-1', killGraceMs: 200, onOutput: (_s, c) => output.push(c) };
  }

  const hash = (n: string): string => digestOf(n).hash;

  function action(inputRoot: Digest, over: Partial<ActionInput> = {}): ActionInput {
    return {
      actionHash: hash(`action-${builds++}`),
      argv: ['./build.sh'],
      env: {},
      inputRoot,
      outputFiles: [],
      outputDirs: [],
      timeoutSec: 20,
      cacheFailed: false,
      ...over,
    };
  }

  const BUILD = '#!/bin/sh\nset -e\nmkdir -p out/sub\ntr a-z A-Z < src/data.txt > out/upper.txt\nprintf "#!/bin/sh\\necho hi\\n" > out/sub/tool\nchmod +x out/sub/tool\necho result > result.txt\necho building\necho warn >&2\n';

  it('materializes inputs, runs, uploads outputs and caches the result', async () => {
    const inputRoot = await uploadTree({ 'build.sh': [BUILD, 0o755], 'src/data.txt': ['hello data\n', 0o644] });
    const workDir = await freshWorkDir();
    const out: string[] = [];
    const input = action(inputRoot, { outputFiles: ['result.txt', 'missing.txt'], outputDirs: ['out'] });
    const ex = await executeAction(input, deps(workDir, out));
    assert.equal(ex.run.exitCode, 0, JSON.stringify(ex.run));
    assert.equal(ex.result.exitCode, 0);
    assert.equal(ex.result.outcome, undefined);
    assert.equal(ex.cached, true);
    assert.equal(ex.result.agent, 'agent-1');
    assert.match(out.join(''), /building/);
    assert.deepEqual(
      ex.result.outputFiles.map((f) => [f.path, f.mode]),
      [['out/sub/tool', 0o755], ['out/upper.txt', 0o644], ['result.txt', 0o644]],
    );
    const stored = await remote.getActionResult(input.actionHash);
    assert.deepEqual(stored, ex.result);
    // Every blob the result names is on the master with the right bytes.
    const upper = ex.result.outputFiles.find((f) => f.path === 'out/upper.txt')!;
    assert.equal((await remote.getBlob(upper.digest))!.toString(), 'HELLO DATA\n');
    assert.equal((await remote.getBlob(ex.result.stdout))!.toString(), 'building\n');
    assert.equal((await remote.getBlob(ex.result.stderr))!.toString(), 'warn\n');
    assert.deepEqual(await remote.findMissing([ex.result.stdout, ex.result.stderr, ...ex.result.outputFiles.map((f) => f.digest)]), []);
    // Inputs came from the master the first time; the build did not change the cache's blobs.
    assert.ok(ex.inputs.downloaded > 0);
    assert.equal((await fsp.stat(path.join(workDir, 'build.sh'))).mode & 0o777, 0o755);
    const data = await fsp.stat(path.join(workDir, 'src/data.txt'));
    assert.equal(data.mode & 0o777, 0o644);
  });

  it('finds the inputs in the local cache on a second execution (no downloads)', async () => {
    const inputRoot = await uploadTree({ 'build.sh': [BUILD, 0o755], 'src/data.txt': ['hello again\n', 0o644] });
    const first = await executeAction(action(inputRoot, { outputDirs: ['out'] }), deps(await freshWorkDir()));
    assert.equal(first.run.exitCode, 0);
    assert.ok(gets.length > 0, 'the first execution downloads from the master');
    gets = [];
    const workDir = await freshWorkDir();
    const second = await executeAction(action(inputRoot, { outputDirs: ['out'] }), deps(workDir));
    assert.equal(second.run.exitCode, 0);
    assert.deepEqual(gets, [], 'no blob fetched from the master');
    assert.equal(second.inputs.downloaded, 0);
    assert.equal(second.inputs.linked + second.inputs.copied, 2);
    const dataBlob = await fsp.stat(local.blobPath(digestOf('hello again\n').hash));
    if ((dataBlob.mode & 0o777) === 0o644) {
      assert.ok(second.inputs.linked >= 1, 'a 0644 input is hardlinked from the cache');
      assert.equal((await fsp.stat(path.join(workDir, 'src/data.txt'))).ino, dataBlob.ino);
    }
    assert.equal(await fsp.readFile(path.join(workDir, 'src/data.txt'), 'utf8'), 'hello again\n');
    // Outputs, stdout and stderr are identical to the first run's and already on the master.
    assert.deepEqual(second.uploaded, []);
  });

  it('does not cache a failing command unless cacheFailed', async () => {
    const inputRoot = await uploadTree({ 'build.sh': ['#!/bin/sh\necho nope >&2\nexit 3\n', 0o755] });
    const plain = action(inputRoot);
    const ex = await executeAction(plain, deps(await freshWorkDir()));
    assert.equal(ex.run.exitCode, 3);
    assert.equal(ex.result.exitCode, 3);
    assert.equal(ex.cached, false);
    assert.equal(await remote.getActionResult(plain.actionHash), undefined);
    // stdout/stderr are still uploaded, so the failure can be shown.
    assert.equal((await remote.getBlob(ex.result.stderr))!.toString(), 'nope\n');

    const sticky = action(inputRoot, { cacheFailed: true });
    const ex2 = await executeAction(sticky, deps(await freshWorkDir()));
    assert.equal(ex2.cached, true);
    assert.equal((await remote.getActionResult(sticky.actionHash))?.exitCode, 3);
  });

  it('never caches a run that timed out, even with cacheFailed', async () => {
    const inputRoot = await uploadTree({ 'build.sh': ['#!/bin/sh\nsleep 30\n', 0o755] });
    const a = action(inputRoot, { timeoutSec: 0.3, cacheFailed: true });
    const ex = await executeAction(a, deps(await freshWorkDir()));
    assert.equal(ex.run.timedOut, true);
    assert.equal(ex.cached, false);
    assert.equal(ex.result.exitCode, TIMED_OUT_EXIT);
    assert.equal(await remote.getActionResult(a.actionHash), undefined);
  });

  it('never caches a command that could not start', async () => {
    const inputRoot = await uploadTree({ 'data.txt': ['x', 0o644] });
    const a = action(inputRoot, { argv: ['./no-such-program'], cacheFailed: true });
    const ex = await executeAction(a, deps(await freshWorkDir()));
    assert.ok(ex.run.error);
    assert.equal(ex.cached, false);
    assert.equal(ex.result.exitCode, NOT_STARTED_EXIT);
  });

  it('rejects an output symlink pointing out of the work dir and uploads nothing of it', async () => {
    const inputRoot = await uploadTree({ 'build.sh': ['#!/bin/sh\necho ok > good.txt\nln -s /etc/passwd leak.txt\n', 0o755] });
    const a = action(inputRoot, { outputFiles: ['good.txt', 'leak.txt'], cacheFailed: true });
    const ex = await executeAction(a, deps(await freshWorkDir()));
    assert.equal(ex.run.exitCode, 0);
    assert.equal(ex.cached, false);
    assert.match(ex.result.outcome ?? '', /output path escapes the work directory: leak\.txt/);
    assert.notEqual(ex.result.exitCode, 0);
    assert.deepEqual(ex.result.outputFiles, []);
    assert.equal(await remote.getActionResult(a.actionHash), undefined);
    const passwd = digestOf(await fsp.readFile('/etc/passwd'));
    assert.deepEqual(await remote.findMissing([passwd]), [passwd], '/etc/passwd was not uploaded');
    assert.ok(!ex.uploaded.some((d) => d.hash === passwd.hash));
  });

  it('rejects outputs reached through a symlinked directory or inside an output dir', async () => {
    const inputRoot = await uploadTree({ 'build.sh': ['#!/bin/sh\nln -s /etc etc\nmkdir out\nln -s /etc/passwd out/p\n', 0o755] });
    const viaDir = await executeAction(action(inputRoot, { outputFiles: ['etc/passwd'] }), deps(await freshWorkDir()));
    assert.match(viaDir.result.outcome ?? '', /escapes the work directory: etc\/passwd/);
    const inDir = await executeAction(action(inputRoot, { outputDirs: ['out'] }), deps(await freshWorkDir()));
    assert.match(inDir.result.outcome ?? '', /escapes the work directory: out\/p/);
    assert.equal(inDir.cached, false);
  });

  it('spills large output to a file and still stores it', async () => {
    const inputRoot = await uploadTree({ 'build.sh': ['#!/bin/sh\nhead -c 300000 /dev/zero | tr "\\0" a\n', 0o755] });
    const d = deps(await freshWorkDir());
    const ex = await executeAction(action(inputRoot), { ...d, captureMemoryBytes: 1024, tmpDir: root });
    assert.equal(ex.run.exitCode, 0);
    assert.equal(ex.result.stdout.size, 300000);
    assert.equal(ex.result.stdout.hash, digestOf(Buffer.alloc(300000, 'a')).hash);
    assert.ok((await fsp.readdir(root)).every((n) => !n.startsWith('spillway-stdout')), 'spill file removed');
  });

  it('never caches output cut short by a full disk: the action fails saying so (a hit would serve the truncated stdout)', async function () {
    const full = path.join(root, 'full');
    await fsp.mkdir(full);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', full], { stdio: 'ignore' });
    } catch {
      console.log('      (skipped: cannot mount a tmpfs here)');
      return this.skip();
    }
    try {
      const inputRoot = await uploadTree({ 'build.sh': ['#!/bin/sh\nhead -c 600000 /dev/zero | tr "\\0" a\n', 0o755] });
      const a = action(inputRoot, { cacheFailed: true });
      const ex = await executeAction(a, { ...deps(await freshWorkDir()), captureMemoryBytes: 1024, tmpDir: full });
      assert.equal(ex.run.exitCode, 0, 'the command itself succeeded');
      assert.match(ex.result.outcome ?? '', /captured output incomplete: \d+ bytes of stdout could not be stored \(disk full\?\)/);
      assert.notEqual(ex.result.exitCode, 0);
      assert.equal(ex.cached, false);
      assert.equal(await remote.getActionResult(a.actionHash), undefined);
    } finally {
      execFileSync('umount', [full]);
    }
  });

  it('copies rather than hardlinks when the cached blob has another mode', async () => {
    // One blob, used once as a plain file and once as an executable.
    const inputRoot = await uploadTree({ 'build.sh': ['#!/bin/sh\ncat build.sh copy.sh > /dev/null\n', 0o755], 'copy.sh': ['#!/bin/sh\ncat build.sh copy.sh > /dev/null\n', 0o644] });
    const workDir = await freshWorkDir();
    const ex = await executeAction(action(inputRoot), deps(workDir));
    assert.equal(ex.run.exitCode, 0, JSON.stringify(ex.run));
    const blob = local.blobPath(digestOf('#!/bin/sh\ncat build.sh copy.sh > /dev/null\n').hash);
    const cacheMode = (await fsp.stat(blob)).mode & 0o777;
    assert.equal((await fsp.stat(path.join(workDir, 'build.sh'))).mode & 0o777, 0o755);
    assert.equal((await fsp.stat(path.join(workDir, 'copy.sh'))).mode & 0o777, 0o644);
    assert.equal((await fsp.stat(blob)).mode & 0o777, cacheMode, 'cache file mode unchanged');
    assert.equal(ex.inputs.linked + ex.inputs.copied, 2);
    assert.ok(ex.inputs.copied >= 1);
  });

  it('kills a cancelled action\'s command and never caches what it produced, even a clean exit on SIGTERM', async () => {
    // The build exits 0 when terminated: were its result kept, the action cache would serve a half-done build.
    const script = '#!/bin/sh\ntrap "echo partial > out.txt; exit 0" TERM\necho started\nwhile :; do sleep 0.05; done\n';
    const inputRoot = await uploadTree({ 'build.sh': [script, 0o755] });
    const ac = new AbortController();
    const out: string[] = [];
    const input = action(inputRoot, { outputFiles: ['out.txt'] });
    const d = { ...deps(await freshWorkDir(), out), signal: ac.signal, onOutput: (_s: string, c: string) => (out.push(c), c.includes('started') && ac.abort('cancelled by submit token 3f9a1c2e')) };
    await assert.rejects(executeAction(input, d), (err: Error & { stage?: string; run?: { exitCode: number | null } }) => {
      assert.match(err.message, /^cancelled: cancelled by submit token 3f9a1c2e$/);
      assert.equal(err.stage, 'run');
      assert.equal(err.run?.exitCode, 0, 'its trap ran: SIGTERM reached it');
      return true;
    });
    assert.equal(await remote.getActionResult(input.actionHash), undefined, 'nothing cached');
    const already = new AbortController();
    already.abort('early');
    await assert.rejects(executeAction(action(inputRoot), { ...deps(await freshWorkDir()), signal: already.signal }), /cancelled: early/);
  });
});
