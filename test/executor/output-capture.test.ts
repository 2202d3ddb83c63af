import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OutputCapture } from '../../src/executor/output-capture';

/** A 1 MiB tmpfs: a full disk, for real, where the machine lets us mount one. */
function smallTmpfs(): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'spillway-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'ignore' });
    return dir;
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
}

describe('OutputCapture on a full disk', () => {
  let dir: string | undefined;
  before(function () {
    dir = smallTmpfs();
    if (!dir) {
      console.log('      (skipped: cannot mount a tmpfs here)');
      this.skip();
    }
  });
  after(() => {
    if (!dir) return;
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('never throws on ENOSPC: keeps what fit, counts what it dropped', () => {
    const capture = new OutputCapture(dir!, 'stdout', 1024);
    const chunk = 'x'.repeat(64 * 1024);
    for (let i = 0; i < 40; i++) capture.write(chunk);
    assert.equal(capture.size, 40 * chunk.length);
    assert.ok(capture.droppedBytes > 0, 'some output did not fit');
    const out = capture.finish();
    assert.ok('path' in out);
    const kept = readFileSync(out.path).length;
    assert.equal(kept + capture.droppedBytes, capture.size);
    return capture.dispose();
  });

  it('keeps what it holds in memory when not even the spill file can be written', async () => {
    const filler = new OutputCapture(dir!, 'filler', 0);
    for (let i = 0; i < 20; i++) filler.write('y'.repeat(64 * 1024));
    filler.finish();
    const capture = new OutputCapture(dir!, 'stderr', 10);
    capture.write('hello');
    capture.write(' world, and more');
    assert.equal(capture.size, 21);
    const out = capture.finish();
    const kept = 'data' in out ? out.data.length : readFileSync(out.path).length;
    assert.equal(kept + capture.droppedBytes, 21);
    await Promise.all([capture.dispose(), filler.dispose()]);
  });
});
