import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { BlobSync, DiskStore, digestOf, realCommitFs, type CommitFs, type DiskStoreOptions, type FsyncMode } from '../../src/cas';
import { FakeClock } from '../fakes/fake-clock';
import { readAll, recordingLogger, tempRoot } from './cas-fixtures';

/** A promise to open by hand, so a test decides when an fsync may finish. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

/** The real commit syscalls, recorded in order, each fsync first waiting for `hold` when set. */
function recordingFs(): { fs: CommitFs; calls: string[]; hold: { file?: Promise<void> }; reached: (what: string) => Promise<void> } {
  const calls: string[] = [];
  const hold: { file?: Promise<void> } = {};
  const waiters: Array<{ what: string; resolve: () => void }> = [];
  const note = (call: string) => {
    calls.push(call);
    for (const w of waiters.splice(0)) {
      if (call.startsWith(w.what)) w.resolve();
      else waiters.push(w);
    }
  };
  const fs: CommitFs = {
    async rename(from, to) {
      await realCommitFs.rename(from, to);
      note(`rename ${path.basename(to)}`);
    },
    async fsyncFile(file) {
      const name = typeof file === 'string' ? path.basename(file) : 'handle';
      // The file must already carry its final name: one fsync then covers data and rename.
      note(`fsync-file ${name}`);
      if (hold.file) await hold.file;
      await realCommitFs.fsyncFile(file);
    },
    async fsyncDir(dir) {
      note(`fsync-dir ${path.basename(dir)}`);
      await realCommitFs.fsyncDir(dir);
    },
  };
  const reached = (what: string) =>
    calls.some((c) => c.startsWith(what)) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ what, resolve }));
  return { fs, calls, hold, reached };
}

describe('cas durability (cas.fsync)', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  const stores: DiskStore[] = [];

  beforeEach(async () => {
    ({ root, cleanup } = await tempRoot('sync'));
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close().catch(() => undefined);
    await cleanup();
  });

  async function open(fsync: FsyncMode, extra: Partial<DiskStoreOptions> = {}) {
    const { log, entries } = recordingLogger();
    const store = await DiskStore.open({ root, maxBytes: 64 * 1024 * 1024, clock: new FakeClock(), log, fsync, ...extra });
    stores.push(store);
    return { store, entries };
  }

  it('before-answer: the PUT resolves only after the renamed file and its directory are fsynced', async () => {
    const rec = recordingFs();
    const release = gate();
    rec.hold.file = release.wait;
    const { store } = await open('before-answer', { commitFs: rec.fs });
    const data = randomBytes(200_000);
    const d = digestOf(data);
    let answered = false;
    const put = store.put(Readable.from([data]), { hash: d.hash, size: d.size }).then((r) => {
      answered = true;
      return r;
    });
    await rec.reached('fsync-file');
    // The fsync is held: the rename happened, the answer must not.
    assert.deepEqual(rec.calls, [`rename ${d.hash}`, 'fsync-file handle']);
    await new Promise((r) => setImmediate(r));
    assert.equal(answered, false);
    release.open();
    assert.deepEqual(await put, { digest: d, stored: true });
    assert.deepEqual(rec.calls, [`rename ${d.hash}`, 'fsync-file handle', `fsync-dir ${d.hash.slice(0, 2)}`]);
    assert.ok((await readAll((await store.get(d.hash))!.stream)).equals(data));
  });

  it('before-answer: a second PUT of a blob whose fsync is pending answers no sooner than the first', async () => {
    const rec = recordingFs();
    const release = gate();
    rec.hold.file = release.wait;
    const { store } = await open('before-answer', { commitFs: rec.fs });
    const data = randomBytes(50_000);
    const d = digestOf(data);
    const first = store.put(Readable.from([data]), { hash: d.hash });
    await rec.reached('fsync-file');
    let secondDone = false;
    const second = store.put(Readable.from([data]), { hash: d.hash }).then((r) => {
      secondDone = true;
      return r;
    });
    // Give the second PUT every chance to finish its write and commit while the sync is held.
    for (let i = 0; i < 20 && !secondDone; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(secondDone, false, 'the duplicate answered before the blob was durable');
    release.open();
    assert.equal((await first).stored, true);
    assert.equal((await second).stored, false);
  });

  it('before-answer: a failed fsync fails the PUT and is logged', async () => {
    const failing: CommitFs = { ...realCommitFs, fsyncFile: async () => Promise.reject(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' })) };
    const { store, entries } = await open('before-answer', { commitFs: failing });
    const data = randomBytes(1000);
    await assert.rejects(store.put(Readable.from([data]), { hash: digestOf(data).hash }), /EIO/);
    assert.ok(entries.some((e) => e.event === 'cas.sync-failed'));
  });

  it('background: the PUT answers before any fsync, and close() syncs what is pending', async () => {
    const rec = recordingFs();
    const release = gate();
    rec.hold.file = release.wait;
    const { store } = await open('background', { commitFs: rec.fs });
    const data = randomBytes(100_000);
    const d = digestOf(data);
    assert.deepEqual(await store.put(Readable.from([data]), { hash: d.hash }), { digest: d, stored: true });
    assert.equal(rec.calls.filter((c) => c.startsWith('fsync-dir')).length, 0, 'answered after the directory fsync');
    assert.equal(store.unsynced + (rec.calls.some((c) => c.startsWith('fsync-file')) ? 1 : 0), 1);
    // Served at once: its bytes were verified before the rename.
    assert.ok((await readAll((await store.get(d.hash))!.stream)).equals(data));
    let closed = false;
    const closing = store.close().then(() => (closed = true));
    await rec.reached('fsync-file');
    await new Promise((r) => setImmediate(r));
    assert.equal(closed, false, 'close() returned with a blob unsynced');
    release.open();
    await closing;
    stores.splice(stores.indexOf(store), 1);
    assert.ok(rec.calls.includes(`fsync-dir ${d.hash.slice(0, 2)}`));
    assert.equal(store.unsynced, 0);
  });

  it('groups: blobs handed over while a group syncs share the next group, one fsync per directory', async () => {
    const { log } = recordingLogger();
    const calls: string[] = [];
    const first = gate();
    let held = false;
    const fs: CommitFs = {
      rename: async () => undefined,
      async fsyncFile(file) {
        calls.push(`file ${String(file)}`);
        if (!held) {
          held = true;
          await first.wait;
        }
      },
      async fsyncDir(dir) {
        calls.push(`dir ${dir}`);
      },
    };
    const sync = new BlobSync({ mode: 'before-answer', fs, log });
    const a = sync.settle('a', 'd1');
    const later = ['b', 'c', 'd', 'e'].map((f, i) => sync.settle(f, i < 3 ? 'd1' : 'd2'));
    assert.equal(sync.pending, 4);
    first.open();
    await Promise.all([a, ...later]);
    assert.deepEqual(calls, ['file a', 'dir d1', 'file b', 'file c', 'file d', 'file e', 'dir d1', 'dir d2']);
  });

  it('the 256 fan-out directories exist from open, so a PUT makes none', async () => {
    await open('before-answer');
    const dirs = await fsp.readdir(path.join(root, 'cas'));
    assert.equal(dirs.length, 256);
    assert.ok(existsSync(path.join(root, 'cas', 'ff')));
  });
});
