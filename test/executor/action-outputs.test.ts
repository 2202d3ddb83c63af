import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { collectOutputs, OutputRejected, type CollectOptions } from '../../src/executor/action-outputs';

/**
 * The hostile side of collecting outputs: what a build leaves in its work directory (symlinks
 * to secrets, loops, fifos, directory links out, files swapped between the check and the read)
 * must never make the agent read or report anything outside the work directory.
 */
describe('executor/action-outputs (hostile outputs)', () => {
  let root: string;
  let work: string;
  let secret: string;
  let n = 0;

  before(async () => {
    root = mkdtempSync(path.join(tmpdir(), 'spillway-outputs-'));
    // Stands in for /etc/shadow: a file outside the work directory the agent could read.
    secret = path.join(root, 'shadow');
    await fsp.writeFile(secret, 'root:secret-hash\n');
  });
  beforeEach(async () => {
    work = path.join(root, `work-${n++}`);
    await fsp.mkdir(work);
  });
  after(() => fsp.rm(root, { recursive: true, force: true }));

  const sh = (script: string) => execFileSync('/bin/sh', ['-c', script], { cwd: work });
  const KEEP: CollectOptions = { symlinks: 'keep' };

  async function refusal(p: Promise<unknown>): Promise<OutputRejected> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof OutputRejected, `expected an OutputRejected, got ${String(err)}`);
    return err;
  }

  async function readAll(open: () => Promise<import('node:fs/promises').FileHandle>): Promise<string> {
    const h = await open();
    try {
      return (await h.readFile()).toString();
    } finally {
      await h.close();
    }
  }

  describe('keep (REAPI): symlinks are outputs of their own', () => {
    it('reports a declared symlink and links inside a directory by their target text, never reading what they lead to', async () => {
      sh(`echo data > real.txt && ln -s real.txt link.txt && mkdir -p d/sub d/empty && ln -s sub d/to-sub && ln -s ../real.txt d/up && echo f > d/sub/f`);
      const got = await collectOutputs(work, work, ['real.txt', 'link.txt'], ['d'], [], KEEP);
      assert.deepEqual(got.files.map((f) => f.path), ['d/sub/f', 'real.txt']);
      assert.deepEqual(got.symlinks, [
        { path: 'd/to-sub', target: 'sub' },
        { path: 'd/up', target: '../real.txt' },
        { path: 'link.txt', target: 'real.txt' },
      ]);
      assert.deepEqual(got.directories, ['d', 'd/empty', 'd/sub']);
    });

    it('reports an empty output directory (declared by output_paths too)', async () => {
      sh('mkdir -p out gen/a/b');
      const got = await collectOutputs(work, work, [], ['out'], ['gen'], KEEP);
      assert.deepEqual([got.files, got.symlinks, got.directories], [[], [], ['gen', 'gen/a', 'gen/a/b', 'out']]);
    });

    it('refuses an absolute target, declared or inside a directory (a link to the shadow file)', async () => {
      sh(`ln -s ${secret} leak && mkdir d && ln -s ${secret} d/leak`);
      const declared = await refusal(collectOutputs(work, work, ['leak'], [], [], KEEP));
      assert.equal(declared.code, 'symlink-target');
      assert.equal(declared.outputPath, 'leak');
      assert.equal((await refusal(collectOutputs(work, work, [], ['d'], [], KEEP))).code, 'symlink-target');
    });

    it('refuses targets that climb out of the work directory, counting from where the link is', async () => {
      sh('mkdir -p sub/d && ln -s ../x up && ln -s ../../x sub/d/up2 && ln -s ../../../x sub/d/up3');
      assert.equal((await refusal(collectOutputs(work, work, ['up'], [], [], KEEP))).code, 'symlink-target');
      // sub/d/up2 -> ../../x stays in the work directory; from cwd "sub" the same link is fine too.
      const ok = await collectOutputs(work, path.join(work, 'sub'), ['d/up2'], [], [], KEEP);
      assert.deepEqual(ok.symlinks, [{ path: 'd/up2', target: '../../x' }]);
      assert.equal((await refusal(collectOutputs(work, path.join(work, 'sub'), ['d/up3'], [], [], KEEP))).code, 'symlink-target');
      sh('mkdir -p e && ln -s a/../../x e/sneaky');
      assert.equal((await refusal(collectOutputs(work, work, [], ['e'], [], KEEP))).code, 'symlink-target', "'..' after a name is refused (the name may be a link)");
    });

    it('reports a symlink loop as the links it is, without following it', async () => {
      sh('mkdir d && ln -s b d/a && ln -s a d/b && ln -s self self');
      const got = await collectOutputs(work, work, ['self'], ['d'], [], KEEP);
      assert.deepEqual(got.symlinks.map((s) => s.path), ['d/a', 'd/b', 'self']);
    });

    it('reports a directory symlink out as a refused absolute link, never walking it', async () => {
      sh(`ln -s ${root} out`);
      assert.equal((await refusal(collectOutputs(work, work, [], ['out'], [], KEEP))).code, 'symlink-target');
    });
  });

  describe('resolve (spillway results): regular files only', () => {
    it('refuses a declared symlink, a link to the shadow file, a directory link out and a loop', async () => {
      sh(`echo x > real && ln -s real link && mkdir d && ln -s ${secret} d/p && ln -s ${root} dirout && mkdir l && ln -s b l/a && ln -s a l/b`);
      assert.match((await refusal(collectOutputs(work, work, ['link'], [], []))).message, /escapes the work directory: link/);
      assert.match((await refusal(collectOutputs(work, work, [], ['d'], []))).message, /escapes the work directory: d\/p/);
      assert.match((await refusal(collectOutputs(work, work, [], ['dirout'], []))).message, /escapes the work directory: dirout/);
      assert.match((await refusal(collectOutputs(work, work, [], ['l'], []))).message, /dangling symlink in output directory: l\/a/);
      sh('mkdir dev && ln -s /dev/zero dev/zero');
      assert.match((await refusal(collectOutputs(work, work, [], ['dev'], []))).message, /escapes the work directory: dev\/zero/, 'a device is never opened');
    });

    it('stores a link inside a directory as the file it leads to inside the work directory', async () => {
      sh('echo content > real && mkdir d && ln -s ../real d/r');
      const got = await collectOutputs(work, work, [], ['d'], []);
      assert.deepEqual(got.files.map((f) => f.path), ['d/r']);
      assert.equal(await readAll(got.files[0]!.open), 'content\n');
    });
  });

  for (const mode of ['keep', 'resolve'] as const) {
    it(`refuses fifos (declared and inside a directory) without blocking on them (${mode})`, async () => {
      sh('mkfifo pipe && mkdir d && mkfifo d/pipe');
      assert.match((await refusal(collectOutputs(work, work, ['pipe'], [], [], { symlinks: mode }))).message, /not a regular file: pipe/);
      assert.match((await refusal(collectOutputs(work, work, [], [], ['pipe'], { symlinks: mode }))).message, /neither a regular file nor a directory: pipe/);
      assert.match((await refusal(collectOutputs(work, work, [], ['d'], [], { symlinks: mode }))).message, /special file in output directory: d\/pipe/);
    });

    it(`refuses an output reached through a symlinked parent directory out (${mode})`, async () => {
      sh(`ln -s ${root} etc`);
      assert.match((await refusal(collectOutputs(work, work, [`etc/${path.basename(secret)}`], [], [], { symlinks: mode }))).message, /escapes the work directory/);
    });

    it(`reads only the file that was checked: one swapped for a symlink to the shadow file, or for another file, is refused (${mode})`, async () => {
      sh('echo honest > out.txt && echo honest2 > out2.txt && mkdir d && echo inner > d/f');
      const got = await collectOutputs(work, work, ['out.txt', 'out2.txt'], ['d'], [], { symlinks: mode });
      const byPath = new Map(got.files.map((f) => [f.path, f]));
      // The race a build's leftover process could win: between the check and the read.
      sh(`rm out.txt && ln -s ${secret} out.txt && mv out2.txt kept && echo other > out2.txt && rm -r d && ln -s ${root} d && cp ${secret} ${root}/f`);
      for (const p of ['out.txt', 'out2.txt', 'd/f']) {
        const err = await refusal(readAll(byPath.get(p)!.open));
        assert.match(err.message, /changed while it was read|replaced by a symlink|escapes/, p);
      }
    });
  }

  it('reads an unchanged file through the checked descriptor', async () => {
    sh('echo fine > a.txt');
    const got = await collectOutputs(work, work, ['a.txt'], [], [], KEEP);
    assert.equal(await readAll(got.files[0]!.open), 'fine\n');
  });
});
