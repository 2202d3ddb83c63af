import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { DiskStore, RemoteStore, StoreHost, digestOf, realCommitFs, type CommitFs, type ToOwner, type ToWorker } from '../../src/cas';
import { FakeClock } from '../fakes/fake-clock';
import { recordingLogger, tempRoot } from './cas-fixtures';

describe('cas RemoteStore PUT (a cache worker\'s uploads)', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  let disk: DiskStore;
  const synced: string[] = [];

  beforeEach(async () => {
    ({ root, cleanup } = await tempRoot('remote-put'));
    synced.length = 0;
    const fs: CommitFs = {
      ...realCommitFs,
      async fsyncFile(file) {
        await realCommitFs.fsyncFile(file);
        synced.push(typeof file === 'string' ? path.basename(file) : '(handle)');
      },
    };
    disk = await DiskStore.open({ root, maxBytes: 64 * 1024 * 1024, clock: new FakeClock(), log: recordingLogger().log, commitFs: fs });
  });
  afterEach(async () => {
    await disk.close();
    await cleanup();
  });

  /** A worker's RemoteStore wired to a StoreHost over an in-process channel that records what the worker asks. */
  function worker(): { store: RemoteStore; ops: string[] } {
    const host = new StoreHost(disk, recordingLogger().log);
    const ops: string[] = [];
    let toWorker: (m: unknown) => void = () => undefined;
    let toOwner: (m: unknown) => void = () => undefined;
    host.attach({ send: (m: ToWorker) => setImmediate(() => toWorker(m)), onMessage: (l) => (toOwner = l) });
    const store = new RemoteStore({
      root,
      channel: {
        send: (m: ToOwner) => {
          if (m.t === 'call') ops.push(m.req.op);
          setImmediate(() => toOwner(m));
        },
        onMessage: (l) => (toWorker = l),
      },
    });
    return { store, ops };
  }

  it('asks no room up front for an upload up to 4 MiB (the commit reserves it), and does for a larger one', async () => {
    const { store, ops } = worker();
    const small = randomBytes(1024 * 1024);
    const large = randomBytes(5 * 1024 * 1024);
    for (const data of [small, large]) {
      const d = digestOf(data);
      assert.deepEqual(await store.put(Readable.from([data]), { hash: d.hash, size: d.size }), { digest: d, stored: true });
    }
    assert.deepEqual(ops, ['commit', 'reserve', 'commit']);
    assert.equal(disk.stats().reservedBytes, 0);
    assert.deepEqual(await fsp.readdir(path.join(root, 'tmp')), []);
  });

  it('answers only after the owner fsynced the renamed file (before-answer), which the worker wrote and closed', async () => {
    const { store } = worker();
    const data = randomBytes(300_000);
    const d = digestOf(data);
    await store.put(Readable.from([data]), { hash: d.hash, size: d.size });
    assert.deepEqual(synced, [d.hash]);
    assert.ok((await fsp.readFile(disk.blobPath(d.hash))).equals(data));
  });

  it('a too-small store still refuses an unreserved upload, at its commit, and keeps no file of it', async () => {
    await disk.close();
    disk = await DiskStore.open({ root, maxBytes: 512 * 1024, clock: new FakeClock(), log: recordingLogger().log });
    const { store } = worker();
    const data = randomBytes(1024 * 1024);
    const d = digestOf(data);
    await assert.rejects(store.put(Readable.from([data]), { hash: d.hash, size: d.size }), { code: 'SPILLWAY_E_CAS_FULL' });
    assert.equal(await disk.has(d), false);
    assert.deepEqual(await fsp.readdir(path.join(root, 'tmp')), []);
  });
});
