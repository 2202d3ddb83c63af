import { strict as assert } from 'node:assert';
import { status as Code } from '@grpc/grpc-js';
import { ActionCache, DiskStore, digestOf, parseActionResult, serializeActionResult, type ActionResult } from '../../src/cas';
import type { BuildRecord } from '../../src/master';
import { reapiProtos } from '../../src/remote-execution';
import { executeOutcome } from '../../src/remote-execution/execute-result';
import { systemClock } from '../../src/lib';
import { recordingLogger, tempRoot } from '../cas/cas-fixtures';

/**
 * The master's side of an agent's result: it is not trusted to have checked its symlinks (a
 * client creates them as they are), and what it lists becomes the REAPI ActionResult.
 */
describe('remote-execution/execute-result', () => {
  let store: DiskStore;
  let actionCache: ActionCache;
  let cleanup: () => Promise<void>;
  let n = 0;

  beforeEach(async () => {
    const t = await tempRoot('execute-result');
    cleanup = t.cleanup;
    store = await DiskStore.open({ root: t.root, maxBytes: 64 * 1024 * 1024, clock: systemClock, log: recordingLogger().log });
    actionCache = await ActionCache.open({ root: `${t.root}/action-cache`, store });
  });
  afterEach(async () => {
    await store.close();
    await cleanup();
  });

  const empty = digestOf('');
  async function outcome(result: Partial<ActionResult>, outputs: { files?: string[]; dirs?: string[]; paths?: string[] }) {
    const full: ActionResult = { exitCode: 0, stdout: empty, stderr: empty, outputFiles: [], agent: 'a1', timings: { startedAt: 1, finishedAt: 2 }, ...result };
    const { digest } = await store.putBuffer(serializeActionResult(full));
    const actionDigest = digestOf(`action ${n++}`);
    const rec = { agent: 'a1', queuedAt: 0, result: 'success', reason: null, actionResult: `${digest.hash}/${digest.size}` } as unknown as BuildRecord;
    const action = { actionDigest, inputRoot: empty, outputFiles: outputs.files ?? [], outputDirs: outputs.dirs ?? [], outputPaths: outputs.paths ?? [] };
    return { ...(await executeOutcome(rec, { action, doNotCache: false }, store, actionCache)), actionDigest };
  }

  for (const target of ['/etc/shadow', 'a/../../x']) {
    it(`refuses an agent's output symlink to ${JSON.stringify(target)} with FAILED_PRECONDITION and caches nothing`, async () => {
      const r = await outcome({ outputSymlinks: [{ path: 'out/l', target }], outputDirectories: ['out'] }, { dirs: ['out'] });
      assert.equal(r.response.status?.code, Code.FAILED_PRECONDITION, JSON.stringify(r.response.status));
      assert.match(r.response.status?.message ?? '', /output symlink refused/);
      assert.deepEqual(r.response.result?.outputDirectories, []);
      assert.equal(r.cached, false);
      assert.equal(await actionCache.getRaw(r.actionDigest.hash), undefined);
    });
  }

  it('puts a file under nested declared directories into the Tree of each, and keeps an older agent (no directory list) working', async () => {
    const f = digestOf('f');
    const r = await outcome({ outputFiles: [{ path: 'a/b/f', digest: f, mode: 0o644 }] }, { dirs: ['a', 'a/b'] });
    assert.equal(r.response.status?.code, Code.OK);
    assert.deepEqual(r.response.result?.outputDirectories?.map((d) => d.path), ['a', 'a/b']);
    const trees = await Promise.all(r.response.result!.outputDirectories!.map(async (d) => reapiProtos().tree.decode((await store.getBuffer(d.treeDigest!.hash!))!)));
    assert.deepEqual(trees[0]!.root!.directories.map((d) => d.name), ['b']);
    assert.deepEqual(trees[1]!.root!.files.map((x) => x.name), ['f']);
    assert.equal(r.cached, true);
  });

  it('reads only well-formed symlink and directory lists from a result blob', () => {
    const base = { kind: 'spillway.action-result/v1', exitCode: 0, stdout: empty, stderr: empty, outputFiles: [], timings: { startedAt: 1, finishedAt: 2 } };
    assert.deepEqual(parseActionResult({ ...base, outputSymlinks: [{ path: 'l', target: 'x' }], outputDirectories: ['d'] })?.outputSymlinks, [{ path: 'l', target: 'x' }]);
    for (const bad of [
      { outputSymlinks: [{ path: '../l', target: 'x' }] },
      { outputSymlinks: [{ path: 'l', target: '' }] },
      { outputSymlinks: [{ path: 'l', target: 'a\u0000b' }] },
      { outputSymlinks: 'l' },
      { outputDirectories: ['/abs'] },
      { outputDirectories: [7] },
      { refused: 'whatever' },
    ]) {
      assert.equal(parseActionResult({ ...base, ...bad }), undefined, JSON.stringify(bad));
    }
  });
});
