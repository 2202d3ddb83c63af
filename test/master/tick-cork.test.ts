import assert from 'node:assert/strict';
import { TickCork, type Corkable } from '../../src/master/agent-listener/tick-cork';

/** A socket that records its cork calls, and how many writes it would let out now. */
function socket(log: string[], name: string): Corkable {
  let depth = 0;
  return {
    cork: () => (depth++, log.push(`cork ${name} ${depth}`)),
    uncork: () => (depth--, log.push(`uncork ${name} ${depth}`)),
  };
}

describe('TickCork: the frames of one turn leave each socket together', () => {
  it('corks a socket once per turn however often it is written, and uncorks every socket at the end of the turn', () => {
    const log: string[] = [];
    const flushes: Array<() => void> = [];
    const cork = new TickCork((f) => flushes.push(f));
    const a = socket(log, 'a');
    const b = socket(log, 'b');
    cork.hold(a);
    cork.hold(a);
    cork.hold(b);
    cork.hold(a);
    assert.deepEqual(log, ['cork a 1', 'cork b 1']);
    assert.equal(flushes.length, 1, 'one flush scheduled per turn');
    flushes.shift()!();
    assert.deepEqual(log.slice(2), ['uncork a 0', 'uncork b 0']);
    // The next turn corks again.
    cork.hold(a);
    assert.equal(flushes.length, 1);
    flushes.shift()!();
    assert.deepEqual(log.slice(4), ['cork a 1', 'uncork a 0']);
  });

  it('flushes by default in the check phase of this turn: before anything scheduled after it there', async () => {
    const log: string[] = [];
    const cork = new TickCork();
    cork.hold(socket(log, 'a'));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(log, ['cork a 1', 'uncork a 0']);
  });
});
