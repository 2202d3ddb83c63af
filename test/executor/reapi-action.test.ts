import { strict as assert } from 'node:assert';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CasClient, DiskStore, digestOf, parseOwnActionResultBytes, type Digest } from '../../src/cas';
import { ActionFailure, executeAction, type ActionDeps, type ActionInput } from '../../src/executor';
import { reapiProtos, type Directory } from '../../src/remote-execution';
import { FakeClock } from '../fakes/fake-clock';
import { recordingLogger, tempRoot } from '../cas/cas-fixtures';
import { startCasServer, type CasServer } from '../cas/http-server';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const wire = (d: Digest) => ({ hash: d.hash, sizeBytes: d.size });

/** Actions whose input tree is REAPI Directory protos (what the Execution service submits). */
describe('executor/reapi-action', () => {
  let server: CasServer;
  let root: string;
  let cleanup: () => Promise<void>;
  let local: DiskStore;
  let remote: CasClient;
  let n = 0;

  beforeEach(async () => {
    server = await startCasServer();
    ({ root, cleanup } = await tempRoot('reapi-action'));
    local = await DiskStore.open({ root: path.join(root, 'local'), maxBytes: 64 * 1024 * 1024, clock: new FakeClock(), log: recordingLogger().log });
    remote = new CasClient({ baseUrl: server.url });
  });
  afterEach(async () => {
    await local.close();
    await server.close();
    await cleanup();
  });

  async function put(data: Buffer | string): Promise<Digest> {
    const buf = Buffer.from(data);
    const digest = digestOf(buf);
    await remote.uploadMissing([{ digest, data: buf }]);
    return digest;
  }
  /** Uploads a Directory proto as is (no checks: the tests craft hostile ones). */
  const dir = (d: Directory): Promise<Digest> => put(reapiProtos().directory.encode(d));

  async function workDir(): Promise<string> {
    const d = path.join(root, `work-${n++}`);
    await fsp.mkdir(d);
    return d;
  }

  const deps = (work: string, over: Partial<ActionDeps> = {}): ActionDeps => ({
    local,
    remote,
    workDir: work,
    baseEnv: { PATH },
    agent: 'agent-r',
    killGraceMs: 200,
    onOutput: () => undefined,
    ...over,
  });

  const action = (inputRoot: Digest, over: Partial<ActionInput> = {}): ActionInput => ({
    actionHash: digestOf(`reapi-action-${n++}`).hash,
    argv: ['/bin/sh', '-c', 'true'],
    env: {},
    inputRoot,
    outputFiles: [],
    outputDirs: [],
    timeoutSec: 20,
    cacheFailed: false,
    treeFormat: 'reapi',
    createOutputParents: true,
    resultTo: 'blob',
    ...over,
  });

  async function failsAtInputs(inputRoot: Digest, pattern: RegExp, over: Partial<ActionDeps> = {}): Promise<void> {
    const work = await workDir();
    await assert.rejects(executeAction(action(inputRoot), deps(work, over)), (err: unknown) => {
      assert.ok(err instanceof ActionFailure, String(err));
      assert.equal(err.stage, 'inputs');
      assert.match(err.message, pattern);
      return true;
    });
    // Nothing was created outside the work dir (its parent holds only what the test made).
    assert.deepEqual((await fsp.readdir(path.dirname(work))).filter((e) => !/^work-\d+$/.test(e) && e !== 'local'), []);
  }

  it('refuses a Directory naming ".." before creating anything', async () => {
    const file = await put('x');
    await failsAtInputs(await dir({ files: [{ name: '..', digest: wire(file) }] }), /invalid entry name/);
  });

  it('refuses absolute and multi-component names', async () => {
    const file = await put('x');
    await failsAtInputs(await dir({ files: [{ name: '/etc/evil', digest: wire(file) }] }), /invalid entry name/);
    await failsAtInputs(await dir({ files: [{ name: 'a/../../evil', digest: wire(file) }] }), /invalid entry name/);
  });

  it('refuses symlinks that are absolute or climb out of the root', async () => {
    await failsAtInputs(await dir({ symlinks: [{ name: 'l', target: '/etc/passwd' }] }), /absolute targets/);
    const inner = await dir({ symlinks: [{ name: 'l', target: '../../x' }] });
    await failsAtInputs(await dir({ directories: [{ name: 'sub', digest: wire(inner) }] }), /escapes the tree root/);
  });

  it('refuses duplicate names and malformed digests', async () => {
    const file = await put('x');
    await failsAtInputs(await dir({ files: [{ name: 'a', digest: wire(file) }], directories: [{ name: 'a', digest: wire(file) }] }), /twice/);
    await failsAtInputs(await dir({ files: [{ name: 'a', digest: { hash: 'zz', sizeBytes: 1 } }] }), /malformed digest/);
  });

  it('refuses bytes that are not a Directory proto', async () => {
    await failsAtInputs(await put(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f])), /not a REAPI Directory/);
  });

  it('holds a REAPI tree to the entry and depth limits (a DAG of small blobs describing a huge tree)', async () => {
    const file = await put('y');
    let node = await dir({ files: Array.from({ length: 10 }, (_, i) => ({ name: `f${i}`, digest: wire(file) })) });
    for (let level = 0; level < 4; level++) {
      node = await dir({ directories: Array.from({ length: 10 }, (_, i) => ({ name: `d${i}`, digest: wire(node) })) });
    }
    await failsAtInputs(node, /more than 5000 entries/, { inputLimits: { maxEntries: 5000 } });
    let deep = await dir({});
    for (let level = 0; level < 12; level++) deep = await dir({ directories: [{ name: 'd', digest: wire(deep) }] });
    await failsAtInputs(deep, /deeper than 10/, { inputLimits: { maxDepth: 10 } });
  });

  it('runs a REAPI action: inputs materialized, output parents created, result as a CAS blob only', async () => {
    const data = await put('hello reapi\n');
    const tool = await put('#!/bin/sh\ntr a-z A-Z < "$1"\n');
    const empty = await dir({});
    const bin = await dir({ files: [{ name: 'upper.sh', digest: wire(tool), isExecutable: true }] });
    const inputRoot = await dir({
      files: [{ name: 'in.txt', digest: wire(data) }],
      directories: [
        { name: 'bin', digest: wire(bin) },
        { name: 'empty', digest: wire(empty) },
      ],
    });
    const work = await workDir();
    const input = action(inputRoot, {
      argv: ['/bin/sh', '-c', 'test -d empty && bin/upper.sh in.txt > out/deep/upper.txt && mkdir -p gen/x && echo g > gen/x/g.txt && echo said >&2'],
      outputFiles: ['out/deep/upper.txt'],
      outputPaths: ['gen'],
    });
    const ex = await executeAction(input, deps(work));
    assert.equal(ex.run.exitCode, 0, JSON.stringify(ex.run));
    assert.equal(ex.cached, false);
    assert.ok(ex.resultDigest, 'the result is returned as a blob');
    // The action cache was not written under the action hash: the master writes the REAPI form.
    assert.equal(await remote.getActionResult(input.actionHash), undefined);
    const stored = parseOwnActionResultBytes((await remote.getBlob(ex.resultDigest))!);
    assert.ok(stored);
    assert.deepEqual(
      stored.outputFiles.map((f) => f.path),
      ['gen/x/g.txt', 'out/deep/upper.txt'],
    );
    const upper = stored.outputFiles.find((f) => f.path === 'out/deep/upper.txt')!;
    assert.equal((await remote.getBlob(upper.digest))!.toString(), 'HELLO REAPI\n');
    assert.equal((await remote.getBlob(stored.stderr))!.toString(), 'said\n');
    assert.equal(stored.agent, 'agent-r');
  });

  it('reports a failing REAPI action with its exit code and stderr (not cached, still returned)', async () => {
    const inputRoot = await dir({});
    const ex = await executeAction(action(inputRoot, { argv: ['/bin/sh', '-c', 'echo broken >&2; exit 7'] }), deps(await workDir()));
    assert.equal(ex.result.exitCode, 7);
    const stored = parseOwnActionResultBytes((await remote.getBlob(ex.resultDigest!))!)!;
    assert.equal(stored.exitCode, 7);
    assert.equal((await remote.getBlob(stored.stderr))!.toString(), 'broken\n');
  });
});
