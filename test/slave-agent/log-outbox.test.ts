import { strict as assert } from 'node:assert';
import { systemClock } from '../../src/lib';
import { LogOutbox, type LogFrame } from '../../src/slave-agent/log-outbox';

describe('slave-agent/log-outbox', () => {
  function outbox(opts: { maxBufferedChars?: number; flushChars?: number } = {}) {
    const sent: LogFrame[] = [];
    const drops: number[] = [];
    let up = false;
    const box = new LogOutbox({
      clock: systemClock,
      canSend: () => up,
      send: (f) => sent.push(f),
      onDrop: (_q, _j, n) => drops.push(n),
      flushMs: 60_000,
      ...opts,
    });
    return { box, sent, drops, setUp: (v: boolean) => (up = v) };
  }

  it('merges consecutive chunks of one stream and keeps stream order', () => {
    const { box, sent, setUp } = outbox();
    setUp(true);
    box.push('q', '1', 'stdout', 'a');
    box.push('q', '1', 'stdout', 'b');
    box.push('q', '1', 'stderr', 'c');
    box.push('q', '1', 'stdout', 'd');
    box.flush('q', '1');
    assert.deepEqual(sent.map((f) => [f.stream, f.data]), [['stdout', 'ab'], ['stderr', 'c'], ['stdout', 'd']]);
    box.close();
  });

  it('sends a build at once when flushChars are waiting', () => {
    const { box, sent, setUp } = outbox({ flushChars: 4 });
    setUp(true);
    box.push('q', '1', 'stdout', 'abcd');
    assert.equal(sent.length, 1);
    box.close();
  });

  it('holds output while down, drops past the bound and marks the gap', () => {
    const { box, sent, drops, setUp } = outbox({ maxBufferedChars: 10 });
    box.push('q', '1', 'stdout', '12345');
    box.push('q', '1', 'stdout', '678');
    box.push('q', '1', 'stdout', 'abcdef');
    box.push('q', '1', 'stdout', 'x');
    box.flush();
    assert.equal(sent.length, 0);
    assert.deepEqual(drops, [6]);
    setUp(true);
    box.flush();
    assert.equal(sent.map((f) => f.data).join(''), '12345678\n[spillway: 7 characters of output dropped while the master was unreachable]\n');
    box.push('q', '1', 'stdout', 'after');
    box.flush();
    assert.equal(sent[sent.length - 1]?.data, 'after');
    box.close();
  });

  it('forgets a build and frees its share of the bound', () => {
    const { box, sent, setUp } = outbox({ maxBufferedChars: 5 });
    box.push('q', '1', 'stdout', '12345');
    box.forget('q', '1');
    box.push('q', '2', 'stdout', 'abcde');
    setUp(true);
    box.flush();
    assert.deepEqual(sent.map((f) => [f.jobId, f.data]), [['2', 'abcde']]);
    box.close();
  });
});
