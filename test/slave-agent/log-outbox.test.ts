import { strict as assert } from 'node:assert';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../../src/lib';
import { LogOutbox, type LogFrame } from '../../src/slave-agent/log-outbox';

describe('slave-agent/log-outbox', () => {
  function outbox(opts: { flushChars?: number; memoryBytes?: number; limitBytes?: number } = {}) {
    const sent: LogFrame[] = [];
    const dir = mkdtempSync(join(tmpdir(), 'spillway-outbox-'));
    let up = false;
    const box = new LogOutbox({
      clock: systemClock,
      canSend: () => up,
      send: (f) => sent.push({ ...f }),
      spillDir: () => dir,
      limitBytes: () => opts.limitBytes ?? 1024 * 1024,
      flushMs: 60_000,
      ...(opts.flushChars !== undefined && { flushChars: opts.flushChars }),
      ...(opts.memoryBytes !== undefined && { memoryBytes: opts.memoryBytes }),
    });
    return { box, sent, dir, setUp: (v: boolean) => (up = v) };
  }

  it('merges consecutive chunks of one stream, keeps stream order, and numbers each frame with its byte offset', () => {
    const { box, sent, setUp } = outbox();
    setUp(true);
    box.push('q', '1', 'stdout', 'a');
    box.push('q', '1', 'stdout', 'bé');
    box.push('q', '1', 'stderr', 'c');
    box.push('q', '1', 'stdout', 'd');
    box.flush('q', '1');
    assert.deepEqual(sent.map((f) => [f.stream, f.data, f.offset]), [['stdout', 'abé', 0], ['stderr', 'c', 4], ['stdout', 'd', 5]]);
    box.close();
  });

  it('sends a build at once when flushChars are waiting', () => {
    const { box, sent, setUp } = outbox({ flushChars: 4 });
    setUp(true);
    box.push('q', '1', 'stdout', 'abcd');
    assert.equal(sent.length, 1);
    box.close();
  });

  it('holds output while down and sends it once up', () => {
    const { box, sent, setUp } = outbox();
    box.push('q', '1', 'stdout', '12345');
    box.push('q', '1', 'stdout', '678');
    box.flush();
    assert.equal(sent.length, 0);
    setUp(true);
    box.flush();
    assert.deepEqual(sent.map((f) => [f.data, f.offset]), [['12345678', 0]]);
    box.close();
  });

  it('resends, after a reconnect, exactly the output the master did not confirm', () => {
    const { box, sent, setUp } = outbox();
    setUp(true);
    box.push('q', '1', 'stdout', 'one\n');
    box.flush();
    box.push('q', '1', 'stdout', 'two\n');
    box.flush();
    box.confirm('q', '1', 4);
    // Sent on the old connection, never confirmed: the master may have died before storing it.
    box.push('q', '1', 'stdout', 'three\n');
    box.flush();
    sent.length = 0;
    box.resend('q', '1');
    box.push('q', '1', 'stdout', 'four\n');
    box.flush();
    assert.deepEqual(sent.map((f) => [f.data, f.offset]), [['two\nthree\nfour\n', 4]]);
    box.close();
  });

  it('moves a large unconfirmed log to a file in its spill dir, resends it whole, and removes the file once confirmed', () => {
    const { box, sent, dir, setUp } = outbox({ memoryBytes: 100, flushChars: 1000 });
    const lines = Array.from({ length: 50 }, (_, i) => `line ${i + 1}\n`);
    for (const l of lines) box.push('q', '1', 'stdout', l);
    const files = readdirSync(dir);
    assert.equal(files.length, 1);
    assert.ok(statSync(join(dir, files[0]!)).size > 100);
    setUp(true);
    box.flush();
    assert.equal(sent.map((f) => f.data).join(''), lines.join(''));
    sent.length = 0;
    box.resend('q', '1');
    box.flush();
    assert.equal(sent.map((f) => f.data).join(''), lines.join(''), 'resent from the file');
    assert.equal(sent[0]?.offset, 0);
    box.confirm('q', '1', Buffer.byteLength(lines.join('')));
    assert.deepEqual(readdirSync(dir), []);
    box.close();
  });

  it('keeps no more than the master stores (builds.logMaxBytes): the piece crossing it, then nothing', () => {
    const { box, sent, setUp } = outbox({ limitBytes: 10 });
    box.push('q', '1', 'stdout', '12345678');
    box.push('q', '1', 'stdout', 'abcdef');
    box.push('q', '1', 'stdout', 'dropped');
    setUp(true);
    box.flush();
    assert.equal(sent.map((f) => f.data).join(''), '12345678abcdef');
    box.close();
  });

  it('forgets a build and removes its file', () => {
    const { box, sent, dir, setUp } = outbox({ memoryBytes: 4 });
    box.push('q', '1', 'stdout', '12345');
    box.forget('q', '1');
    assert.deepEqual(readdirSync(dir), []);
    box.push('q', '2', 'stdout', 'abcde');
    setUp(true);
    box.flush();
    assert.deepEqual(sent.map((f) => [f.jobId, f.data]), [['2', 'abcde']]);
    box.close();
  });
});
