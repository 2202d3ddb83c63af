import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  EMPTY_DIGEST,
  InvalidTreeError,
  buildTree,
  decodeDirectory,
  digestOf,
  digestOfDirectory,
  encodeDirectory,
  materializeTree,
  type BuiltTree,
  type Digest,
  type TreeFetcher,
} from '../../src/cas';

describe('cas merkle-tree', () => {
  let tmp: string;
  let n = 0;
  const dir = async (): Promise<string> => {
    const d = path.join(tmp, `d${n++}`);
    await fsp.mkdir(d);
    return d;
  };

  beforeEach(async () => {
    tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'merkle-'));
  });
  afterEach(async () => {
    await fsp.rm(tmp, { recursive: true, force: true });
  });

  /** A fetcher backed by a built tree's maps, copying files like a cache would. */
  function fetcherOf(tree: Pick<BuiltTree, 'directories' | 'files'>): TreeFetcher & { fileCalls: string[] } {
    const fileCalls: string[] = [];
    return {
      fileCalls,
      async directory(hash) {
        const b = tree.directories.get(hash);
        if (!b) throw new Error(`no directory ${hash}`);
        return b;
      },
      async file(digest, destPath) {
        fileCalls.push(destPath);
        const src = tree.files.get(digest.hash);
        if (!src) throw new Error(`no file ${digest.hash}`);
        await fsp.copyFile(src, destPath);
      },
    };
  }

  /** A fetcher serving hand-written directory blobs (possibly hostile), keyed by their own hash. */
  function rawFetcher(blobs: Buffer[]): { fetch: TreeFetcher } {
    const m = new Map(blobs.map((b) => [digestOf(b).hash, b]));
    return {
      fetch: {
        async directory(hash) {
          const b = m.get(hash);
          if (!b) throw new Error(`no directory ${hash}`);
          return b;
        },
        async file(_d, destPath) {
          await fsp.writeFile(destPath, '');
        },
      },
    };
  }

  async function writeSample(root: string, order: 'forward' | 'reverse'): Promise<void> {
    const steps: (() => Promise<void>)[] = [
      () => fsp.writeFile(path.join(root, 'a.txt'), 'alpha'),
      () => fsp.writeFile(path.join(root, 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 }),
      () => fsp.mkdir(path.join(root, 'sub', 'deeper'), { recursive: true }).then(() => undefined),
      () => fsp.mkdir(path.join(root, 'empty')).then(() => undefined),
      () => fsp.writeFile(path.join(root, '.hidden'), ''),
    ];
    const late: (() => Promise<void>)[] = [
      () => fsp.writeFile(path.join(root, 'sub', 'b.txt'), 'beta'),
      () => fsp.writeFile(path.join(root, 'sub', 'deeper', 'c.bin'), Buffer.alloc(200_000, 7)),
      () => fsp.symlink('../a.txt', path.join(root, 'sub', 'link-a')),
      () => fsp.symlink('sub/deeper', path.join(root, 'to-deeper')),
    ];
    for (const s of order === 'forward' ? steps : [...steps].reverse()) await s();
    for (const s of order === 'forward' ? late : [...late].reverse()) await s();
  }

  it('encodes canonically: fixed key order, no whitespace, entries in UTF-8 byte order', () => {
    const d: Digest = { hash: 'a'.repeat(64), size: 3 };
    const enc = encodeDirectory({
      files: [
        { name: 'b', digest: d, executable: true },
        { name: '\u{1F600}', digest: d, executable: false },
        { name: '\uFFFD', digest: d, executable: false },
        { name: 'B"\n', digest: d, executable: false },
      ],
      directories: [{ name: 'a', digest: d }],
      symlinks: [{ name: 'l', target: 'a/x' }],
    }).toString('utf8');
    const f = (name: string, x: boolean): string => `{"name":${name},"digest":{"hash":"${'a'.repeat(64)}","size":3},"executable":${x}}`;
    assert.equal(
      enc,
      `{"files":[${f('"B\\"\\n"', false)},${f('"b"', true)},${f('"\uFFFD"', false)},${f('"\u{1F600}"', false)}],` +
        `"directories":[{"name":"a","digest":{"hash":"${'a'.repeat(64)}","size":3}}],"symlinks":[{"name":"l","target":"a/x"}]}`,
    );
    assert.equal(
      encodeDirectory({ files: [], directories: [], symlinks: [] }).toString(),
      '{"files":[],"directories":[],"symlinks":[]}',
    );
  });

  it('rejects invalid names and duplicates when encoding, and non-canonical blobs when decoding', () => {
    const d = EMPTY_DIGEST;
    for (const name of ['', '.', '..', 'a/b', 'a\0b', '\uD800']) {
      assert.throws(() => encodeDirectory({ files: [{ name, digest: d, executable: false }], directories: [], symlinks: [] }), InvalidTreeError, JSON.stringify(name));
    }
    assert.throws(
      () => encodeDirectory({ files: [{ name: 'x', digest: d, executable: false }], directories: [{ name: 'x', digest: d }], symlinks: [] }),
      /twice/,
    );
    const good = encodeDirectory({ files: [{ name: 'x', digest: d, executable: false }, { name: 'y', digest: d, executable: true }], directories: [], symlinks: [] });
    assert.deepEqual(decodeDirectory(good).files.map((f) => f.name), ['x', 'y']);
    const text = good.toString();
    for (const bad of [
      text.replace('{"files"', '{ "files"'),
      text.replace(',"executable":false', ',"executable":false,"extra":1'),
      '{}',
      `{"files":[${JSON.parse(text).files.reverse().map((e: unknown) => JSON.stringify(e)).join(',')}],"directories":[],"symlinks":[]}`,
      text.replace(`"size":0`, `"size":0.0`),
      'not json',
    ]) {
      assert.throws(() => decodeDirectory(Buffer.from(bad)), InvalidTreeError, bad);
    }
  });

  it('gives the same digest for the same tree regardless of creation order and mtimes', async () => {
    const a = await dir();
    const b = await dir();
    await writeSample(a, 'forward');
    await writeSample(b, 'reverse');
    await fsp.utimes(path.join(b, 'a.txt'), new Date(2001, 1, 1), new Date(2001, 1, 1));
    await fsp.utimes(path.join(b, 'sub'), new Date(1999, 1, 1), new Date(1999, 1, 1));
    const ta = await buildTree(a);
    const tb = await buildTree(b);
    assert.deepEqual(ta.root, tb.root);
    assert.deepEqual([...ta.directories.keys()].sort(), [...tb.directories.keys()].sort());
    assert.equal(ta.directories.size, 4); // root, sub, sub/deeper, empty
    assert.equal(ta.files.get(EMPTY_DIGEST.hash), path.join(a, '.hidden'));
    assert.deepEqual(ta.root, digestOf(ta.directories.get(ta.root.hash)!));
  });

  it('changes the digest when the executable bit, a name or an empty directory changes', async () => {
    const a = await dir();
    await writeSample(a, 'forward');
    const base = (await buildTree(a)).root;

    await fsp.chmod(path.join(a, 'a.txt'), 0o644 | 0o010); // any x bit counts
    const exec = (await buildTree(a)).root;
    assert.notDeepEqual(exec, base);
    await fsp.chmod(path.join(a, 'a.txt'), 0o644);
    assert.deepEqual((await buildTree(a)).root, base);

    await fsp.rename(path.join(a, 'sub', 'b.txt'), path.join(a, 'sub', 'B.txt'));
    assert.notDeepEqual((await buildTree(a)).root, base);
    await fsp.rename(path.join(a, 'sub', 'B.txt'), path.join(a, 'sub', 'b.txt'));

    await fsp.rmdir(path.join(a, 'empty'));
    const noEmpty = (await buildTree(a)).root;
    assert.notDeepEqual(noEmpty, base);
    await fsp.mkdir(path.join(a, 'empty'));
    assert.deepEqual((await buildTree(a)).root, base);
  });

  it('hashes an empty root as the empty directory node', async () => {
    const a = await dir();
    const t = await buildTree(a);
    assert.deepEqual(t.root, digestOfDirectory({ files: [], directories: [], symlinks: [] }));
    assert.equal(t.files.size, 0);
    const out = path.join(tmp, 'out-empty');
    await materializeTree(t.root, out, fetcherOf(t));
    assert.deepEqual(await fsp.readdir(out), []);
  });

  it('build -> materialize -> build round-trips files, modes, empty dirs and symlinks', async () => {
    const a = await dir();
    await writeSample(a, 'forward');
    const t = await buildTree(a);
    const out = path.join(tmp, 'out');
    const fetch = fetcherOf(t);
    await materializeTree(t.root, out, fetch);
    assert.equal(fetch.fileCalls.length, 5);
    assert.deepEqual((await buildTree(out)).root, t.root);
    assert.equal((await fsp.stat(path.join(out, 'run.sh'))).mode & 0o777, 0o755);
    assert.equal((await fsp.stat(path.join(out, 'a.txt'))).mode & 0o777, 0o644);
    assert.equal((await fsp.stat(path.join(out, 'empty'))).isDirectory(), true);
    assert.equal(await fsp.readlink(path.join(out, 'sub', 'link-a')), '../a.txt');
    assert.equal((await fsp.lstat(path.join(out, 'to-deeper'))).isSymbolicLink(), true);
    assert.equal(await fsp.readFile(path.join(out, 'sub', 'link-a'), 'utf8'), 'alpha');
    assert.equal((await fsp.readFile(path.join(out, 'sub', 'deeper', 'c.bin'))).length, 200_000);
  });

  it('corrects a file mode the fetcher got wrong, and refuses a non-regular result', async () => {
    const a = await dir();
    await fsp.writeFile(path.join(a, 'x'), 'x', { mode: 0o700 });
    const t = await buildTree(a);
    const out = path.join(tmp, 'out-mode');
    await materializeTree(t.root, out, {
      directory: async (h) => t.directories.get(h)!,
      file: async (_d, p) => fsp.writeFile(p, 'x', { mode: 0o600 }),
    });
    assert.equal((await fsp.stat(path.join(out, 'x'))).mode & 0o7777, 0o755);
    await assert.rejects(
      materializeTree(t.root, path.join(tmp, 'out-link'), {
        directory: async (h) => t.directories.get(h)!,
        file: async (_d, p) => fsp.symlink('/etc/passwd', p),
      }),
      /regular file/,
    );
  });

  it('rejects absolute and escaping symlinks when building', async () => {
    const cases: [string, string][] = [
      ['abs', '/etc/passwd'],
      ['up', '../outside'],
      ['sub/up2', '../../outside'],
      ['sub/mid', 'x/../../..'],
      ['sub/mid2', 'deeper/../b'],
    ];
    for (const [where, target] of cases) {
      const a = await dir();
      await fsp.mkdir(path.join(a, 'sub'));
      await fsp.symlink(target, path.join(a, where));
      await assert.rejects(buildTree(a), (err: unknown) => {
        assert.ok(err instanceof InvalidTreeError, String(err));
        assert.match(err.message, new RegExp(`symlink ${where} ->`));
        return true;
      });
    }
    const ok = await dir();
    await fsp.mkdir(path.join(ok, 'sub'));
    await fsp.symlink('../top', path.join(ok, 'sub', 'up-to-root')); // dangling but inside: fine
    await fsp.symlink('./sub//up-to-root', path.join(ok, 'here'));
    const t = await buildTree(ok);
    assert.equal(t.directories.size, 2);
  });

  it('follows symlinks when asked, recording their content', async () => {
    const a = await dir();
    await fsp.writeFile(path.join(a, 'f'), 'data');
    await fsp.symlink('f', path.join(a, 'l'));
    const followed = await buildTree(a, { followSymlinks: true });
    const plain = await dir();
    await fsp.writeFile(path.join(plain, 'f'), 'data');
    await fsp.writeFile(path.join(plain, 'l'), 'data');
    assert.deepEqual(followed.root, (await buildTree(plain)).root);

    await fsp.symlink('.', path.join(a, 'loop'));
    await assert.rejects(buildTree(a, { followSymlinks: true }), /cycle/);
    await fsp.rm(path.join(a, 'loop'));
    await fsp.symlink('missing', path.join(a, 'dangling'));
    await assert.rejects(buildTree(a, { followSymlinks: true }), /cannot be followed/);
  });

  it('rejects special files instead of skipping them', async () => {
    const a = await dir();
    execFileSync('mkfifo', [path.join(a, 'pipe')]);
    await assert.rejects(buildTree(a), /pipe is neither a file/);
  });

  it('refuses hostile directory blobs without writing outside dest', async () => {
    const h = EMPTY_DIGEST.hash;
    const fileBlob = (name: string): Buffer =>
      Buffer.from(`{"files":[{"name":${JSON.stringify(name)},"digest":{"hash":"${h}","size":0},"executable":false}],"directories":[],"symlinks":[]}`);
    const linkBlob = (name: string, target: string): Buffer =>
      Buffer.from(`{"files":[],"directories":[],"symlinks":[{"name":${JSON.stringify(name)},"target":${JSON.stringify(target)}}]}`);
    const nest = (name: string, child: Buffer): Buffer => {
      const d = digestOf(child);
      return Buffer.from(`{"files":[],"directories":[{"name":${JSON.stringify(name)},"digest":{"hash":"${d.hash}","size":${d.size}}}],"symlinks":[]}`);
    };
    const hostile: [string, Buffer[]][] = [
      ['dotdot file', [fileBlob('..')]],
      ['slash file', [fileBlob('../../escaped')]],
      ['dot file', [fileBlob('.')]],
      ['empty name', [fileBlob('')]],
      ['nul name', [fileBlob('a\0b')]],
      ['dotdot dir', (() => { const c = fileBlob('escaped'); return [nest('..', c), c]; })()],
      ['absolute link', [linkBlob('l', '/etc')]],
      ['escaping link', [linkBlob('l', '..')]],
      ['nested escaping link', (() => { const c = linkBlob('l', '../../x'); return [nest('sub', c), c]; })()],
    ];
    for (const [label, blobs] of hostile) {
      const { fetch } = rawFetcher(blobs);
      const dest = path.join(tmp, 'jail', label.replace(/ /g, '-'));
      await assert.rejects(materializeTree(digestOf(blobs[0]!), dest, fetch), InvalidTreeError, label);
    }
    assert.deepEqual((await fsp.readdir(tmp)).sort(), ['jail']);
    await assert.rejects(fsp.access(path.join(tmp, 'escaped')));

    // A blob that does not match the digest it was fetched under.
    const good = linkBlob('l', 'x');
    const { fetch } = rawFetcher([good]);
    await assert.rejects(
      materializeTree({ hash: digestOf(good).hash, size: good.length + 1 }, path.join(tmp, 'mismatch'), fetch),
      /does not match its digest/,
    );
    const swapped: TreeFetcher = { directory: async () => fileBlob('x'), file: fetch.file };
    await assert.rejects(materializeTree(digestOf(good), path.join(tmp, 'swapped'), swapped), /does not match its digest/);
  });

  it('refuses a non-empty destination', async () => {
    const a = await dir();
    await fsp.writeFile(path.join(a, 'f'), 'f');
    const t = await buildTree(a);
    const dest = await dir();
    await fsp.writeFile(path.join(dest, 'existing'), '');
    await assert.rejects(materializeTree(t.root, dest, fetcherOf(t)), /non-empty/);
  });
});
