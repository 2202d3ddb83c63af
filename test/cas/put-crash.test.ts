import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { DiskStore, digestOf, type FsyncMode } from '../../src/cas';
import { FakeClock } from '../fakes/fake-clock';
import { readAll, recordingLogger, tempRoot } from './cas-fixtures';

const FIXTURE = path.join(__dirname, 'fixtures', 'crash-put.js');

/** Runs the fixture to its crash point; resolves once it died of SIGKILL (anything else fails). */
function crashAt(root: string, mode: FsyncMode, point: string, dataFile: string, hash: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FIXTURE, root, mode, point, dataFile, hash], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`fixture exited ${code} ${signal}: ${out}`))));
  });
}

/**
 * What a power loss may leave of a renamed blob whose data was never fsynced (the page cache
 * is gone, the new name survived): nothing of it, or its size with other bytes. A process kill
 * alone leaves the page cache, so the file is whole; these simulate the machine dying too.
 */
const POWER_LOSS = {
  none: async () => undefined,
  truncated: (file: string) => fsp.truncate(file, 0),
  zeroed: async (file: string) => {
    const { size } = await fsp.stat(file);
    await fsp.writeFile(file, Buffer.alloc(size));
  },
} as const;

describe('cas PUT crash safety: killed at each point of the PUT path, restarted', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  const data = randomBytes(3 * 1024 * 1024 + 17);
  const d = digestOf(data);
  let dataFile: string;

  beforeEach(async () => {
    ({ root, cleanup } = await tempRoot('crash'));
    dataFile = path.join(root, 'blob.data');
    await fsp.writeFile(dataFile, data);
    root = path.join(root, 'store');
  });
  afterEach(() => cleanup());

  /** Reopens the store on what the crash left: never a partial or unverified blob, and it heals. */
  async function restartAndCheck(expectPresent: boolean | 'either'): Promise<void> {
    const { log } = recordingLogger();
    const store = await DiskStore.open({ root, maxBytes: 256 * 1024 * 1024, clock: new FakeClock(), log });
    try {
      assert.deepEqual(await fsp.readdir(path.join(root, 'tmp')), [], 'an upload of the dead process is left');
      const reader = await store.get(d.hash);
      if (reader) {
        const served = await readAll(reader.stream);
        assert.ok(served.equals(data), `served ${served.length} bytes that are not the blob`);
      }
      if (expectPresent !== 'either') assert.equal(reader !== undefined, expectPresent);
      assert.equal(await store.has(d), reader !== undefined);
      // Whatever was lost can be stored again, and is then served whole.
      await store.put(Readable.from([data]), { hash: d.hash, size: d.size });
      assert.ok((await readAll((await store.get(d.hash))!.stream)).equals(data));
    } finally {
      await store.close();
    }
  }

  const cases: Array<{ mode: FsyncMode; point: string; loss: keyof typeof POWER_LOSS; present: boolean | 'either' }> = [];
  for (const mode of ['before-answer', 'background'] as const) {
    cases.push({ mode, point: 'mid-body', loss: 'none', present: false });
    cases.push({ mode, point: 'before-rename', loss: 'none', present: false });
    cases.push({ mode, point: 'after-rename', loss: 'none', present: true });
    cases.push({ mode, point: 'after-rename', loss: 'truncated', present: false });
    cases.push({ mode, point: 'after-rename', loss: 'zeroed', present: false });
  }
  // before-answer: answered means fsynced, so nothing the power loss could take is left.
  cases.push({ mode: 'before-answer', point: 'after-file-fsync', loss: 'none', present: true });
  cases.push({ mode: 'before-answer', point: 'after-answer', loss: 'none', present: true });
  // background: answered before the group's fsync, so a power loss may still take it.
  cases.push({ mode: 'background', point: 'after-answer', loss: 'none', present: 'either' });
  cases.push({ mode: 'background', point: 'after-answer', loss: 'truncated', present: 'either' });
  cases.push({ mode: 'background', point: 'after-answer', loss: 'zeroed', present: 'either' });

  for (const c of cases) {
    it(`${c.mode}, killed ${c.point}${c.loss === 'none' ? '' : `, then a power loss leaves the file ${c.loss}`}: ${c.present === 'either' ? 'served whole or not at all' : c.present ? 'served whole' : 'absent'}`, async () => {
      await crashAt(root, c.mode, c.point, dataFile, d.hash);
      const final = path.join(root, 'cas', d.hash.slice(0, 2), d.hash);
      const renamed = await fsp.stat(final).then(() => true, () => false);
      if (c.loss !== 'none') {
        // In background mode the group may have synced before the kill; the loss is simulated regardless.
        assert.ok(renamed, 'the crash point is after the rename, yet no blob file');
        await POWER_LOSS[c.loss](final);
      }
      await restartAndCheck(c.present);
    });
  }
});
