import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import {
  ActionCache,
  DiskStore,
  EMPTY_DIGEST,
  digestOf,
  parseActionResult,
  parseActionResultBytes,
  serializeActionResult,
  type ActionResult,
} from '../../src/cas';
import { FakeClock } from '../fakes/fake-clock';
import { readAll, recordingLogger, tempRoot } from './cas-fixtures';

describe('cas ActionCache', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  let store: DiskStore;
  let ac: ActionCache;
  const actionKey = digestOf('action #1').hash;

  beforeEach(async () => {
    ({ root, cleanup } = await tempRoot('ac'));
    const clock = new FakeClock();
    const { log } = recordingLogger();
    store = await DiskStore.open({ root, maxBytes: 10_000, clock, log });
    ac = await ActionCache.open({ root, store });
  });
  afterEach(async () => {
    await store.close();
    await cleanup();
  });

  async function resultWithBlobs(exitCode = 0): Promise<ActionResult> {
    const stdout = (await store.putBuffer(Buffer.from('compiled ok\n'))).digest;
    const out = (await store.putBuffer(Buffer.from('\x7fELF...'))).digest;
    return {
      exitCode,
      stdout,
      stderr: { ...EMPTY_DIGEST },
      outputFiles: [{ path: 'out/hello.o', digest: out, mode: 0o644 }],
      agent: 'onprem-7',
      timings: { queuedAt: 1000, startedAt: 1500, finishedAt: 2500 },
    };
  }

  it('stores and serves a complete successful result as a file under ac/', async () => {
    const result = await resultWithBlobs();
    assert.equal(await ac.put(actionKey, result), true);
    assert.deepEqual(await ac.get(actionKey), result);
    const file = path.join(root, 'ac', actionKey.slice(0, 2), actionKey);
    assert.deepEqual(parseActionResultBytes(await fsp.readFile(file)), result);
    assert.equal(await ac.get(digestOf('other').hash), undefined);
    assert.equal(await ac.delete(actionKey), true);
    assert.equal(await ac.get(actionKey), undefined);
  });

  it('does not serve a result whose blobs are gone unless asked', async () => {
    const result = await resultWithBlobs();
    await ac.put(actionKey, result);
    await store.delete(result.outputFiles[0]!.digest.hash);
    assert.equal(await ac.get(actionKey, { requireComplete: true }), undefined);
    assert.equal(await ac.get(actionKey), undefined, 'complete is the default');
    assert.deepEqual(await ac.get(actionKey, { requireComplete: false }), result);
  });

  it('caches failed results only when allowed', async () => {
    const failed = await resultWithBlobs(2);
    assert.equal(await ac.put(actionKey, failed), false);
    assert.equal(await ac.get(actionKey), undefined);
    const killed = { ...(await resultWithBlobs(0)), outcome: 'timed out after 60s' };
    assert.equal(await ac.put(actionKey, killed), false);
    assert.equal(await ac.put(actionKey, failed, { allowFailed: true }), true);
    assert.equal((await ac.get(actionKey))?.exitCode, 2);
  });

  it('keeps opaque values in a raw namespace backed by the CAS', async () => {
    const value = Buffer.from([0x0a, 0x20, 0xff, 0x00, 0x01]); // protobuf-ish bytes
    await ac.putRaw(actionKey, Readable.from([value]));
    assert.equal(await ac.get(actionKey), undefined, 'a raw value is not an action result');
    const reader = await ac.getRaw(actionKey);
    assert.ok(reader);
    assert.ok((await readAll(reader.stream)).equals(value));
    await store.delete(digestOf(value).hash); // evicted blob -> raw miss
    assert.equal(await ac.getRaw(actionKey), undefined);
  });

  it('parses only well-formed results with safe relative output paths', async () => {
    const good = await resultWithBlobs();
    assert.deepEqual(parseActionResultBytes(serializeActionResult(good)), good);
    for (const p of ['/etc/passwd', '../x', 'a/../../x', '', 'a//b']) {
      assert.equal(parseActionResult({ ...good, outputFiles: [{ ...good.outputFiles[0]!, path: p }] }), undefined, p);
    }
    assert.equal(parseActionResult({ ...good, exitCode: '0' }), undefined);
    assert.equal(parseActionResult({ ...good, kind: 'someone-else' }), undefined);
    assert.equal(parseActionResultBytes(Buffer.from('{"hello":1}')), undefined);
    assert.equal(parseActionResultBytes(Buffer.from([0x0a, 0x01])), undefined);
    await assert.rejects(ac.get('NOTHEX'), /bad action key/);
    await assert.rejects(ac.put(actionKey.toUpperCase(), good), /bad action key/);
  });
});
