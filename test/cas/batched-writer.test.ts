import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, promises as fsp, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchedWriter } from '../../src/cas/batched-writer';

describe('cas/batched-writer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'spillway-bw-'));

  it('writes every byte in order across batches and background flushes', async () => {
    // Uneven pieces, 12 MiB in all: several batches, one background datasync on the way.
    const pieces = Array.from({ length: 200 }, (_, i) => randomBytes(30_000 + ((i * 7919) % 60_000)));
    const file = join(dir, 'out');
    const fh = await fsp.open(file, 'wx');
    const w = new BatchedWriter(fh);
    for (const p of pieces) await w.write(p);
    await w.flush();
    await fh.close();
    assert.ok(Buffer.concat(pieces).equals(readFileSync(file)));
  });

  it('reports a failed write at flush, not as an unhandled rejection', async () => {
    const file = join(dir, 'read-only');
    writeFileSync(file, '');
    const fh = await fsp.open(file, 'r');
    const w = new BatchedWriter(fh);
    try {
      for (let i = 0; i < 4; i++) await w.write(randomBytes(512 * 1024)).catch(() => undefined);
      await assert.rejects(w.flush(), /EBADF/);
    } finally {
      await fh.close();
    }
  });
});
