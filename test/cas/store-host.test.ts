import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { DiskStore, StoreHost, digestOf, type ToWorker } from '../../src/cas';
import { FakeClock } from '../fakes/fake-clock';
import { recordingLogger, tempRoot } from './cas-fixtures';

/** A worker's end of the channel, driven by the test: what it sends, and the owner's answers. */
function channelPair(host: StoreHost) {
  let deliver: (m: unknown) => void = () => undefined;
  const replies: ToWorker[] = [];
  const waiting: Array<() => void> = [];
  host.attach({
    send: (m) => {
      replies.push(m);
      for (const w of waiting.splice(0)) w();
    },
    onMessage: (l) => (deliver = l),
  });
  const reply = async (id: number) => {
    for (;;) {
      const r = replies.find((m) => m.t === 'reply' && m.id === id);
      if (r) return r;
      await new Promise<void>((w) => waiting.push(w));
    }
  };
  return { send: (m: unknown) => deliver(m), reply, replies };
}

describe('cas StoreHost (the index owner cache workers ask)', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  let disk: DiskStore;
  let logs: ReturnType<typeof recordingLogger>;
  beforeEach(async () => {
    ({ root, cleanup } = await tempRoot('host'));
    logs = recordingLogger();
    disk = await DiskStore.open({ root, maxBytes: 1024 * 1024, clock: new FakeClock(), log: logs.log });
  });
  afterEach(async () => {
    await disk.close();
    await cleanup();
  });

  it('commits only files of the store\'s own upload dir, whatever path a worker names', async () => {
    const host = new StoreHost(disk, logs.log);
    const c = channelPair(host);
    const data = randomBytes(100);
    const outside = path.join(root, 'outside');
    await fsp.writeFile(outside, data);
    for (const [id, tmp] of [[1, outside], [2, path.join(root, 'tmp', '..', 'outside')], [3, '/etc/hostname']] as const) {
      c.send({ t: 'call', id, req: { op: 'commit', tmp, digest: digestOf(data), reservation: 0 } });
      const r = await c.reply(id);
      assert.ok(r.t === 'reply' && !r.ok, `refused ${tmp}`);
    }
    assert.equal(await disk.has(digestOf(data)), false, 'nothing entered the store');
    assert.equal(await fsp.readFile(outside).then((b) => b.equals(data)), true, 'and nothing was moved');
  });

  it('ignores malformed messages, answers bad requests with an error, and never gives room beyond the limit', async () => {
    const host = new StoreHost(disk, logs.log);
    const c = channelPair(host);
    for (const junk of [null, 'x', { t: 'call' }, { t: 'call', id: -1, req: { op: 'lookup', hash: 'zz' } }, { t: 'touch', hashes: ['../../etc'] }, { t: 'release', bytes: -5 }]) c.send(junk);
    assert.equal(logs.entries.filter((e) => e.event === 'cas.worker-bad-message').length, 6);
    assert.equal(c.replies.length, 0);
    c.send({ t: 'call', id: 7, req: { op: 'reserve', size: 10 * 1024 * 1024, hash: '(any)' } });
    const r = await c.reply(7);
    assert.ok(r.t === 'reply' && !r.ok && r.code === 'SPILLWAY_E_CAS_FULL', JSON.stringify(r));
    assert.equal(disk.stats().reservedBytes, 0);
  });

  it('tells every worker which blobs left the store, batched per tick', async () => {
    const host = new StoreHost(disk, logs.log);
    const a = channelPair(host);
    const b = channelPair(host);
    const blobs = [randomBytes(10), randomBytes(20)];
    for (const x of blobs) await disk.putBuffer(x);
    for (const x of blobs) await disk.delete(digestOf(x).hash);
    await new Promise((r) => setImmediate(r));
    for (const c of [a, b]) {
      assert.ok(c.replies.every((m) => m.t === 'gone'));
      assert.deepEqual(c.replies.flatMap((m) => (m.t === 'gone' ? m.hashes : [])), blobs.map((x) => digestOf(x).hash));
    }
  });
});
