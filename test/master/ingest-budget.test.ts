import assert from 'node:assert/strict';
import { IngestBudget, type PauseReason, type ReadFlow } from '../../src/master/agent-listener/ingest-budget';

/** A connection's reads as a list of what the budget did to them. */
function flow(): ReadFlow & { calls: string[]; paused: boolean } {
  const f = {
    calls: [] as string[],
    paused: false,
    pause(reason: PauseReason) {
      assert.equal(f.paused, false, 'paused twice without a resume');
      f.paused = true;
      f.calls.push(`pause:${reason}`);
    },
    resume() {
      assert.equal(f.paused, true, 'resumed while reading');
      f.paused = false;
      f.calls.push('resume');
    },
  };
  return f;
}

describe('master: ingest budget (frames received, not yet processed)', () => {
  it('pauses a connection at its frame limit and resumes it when one of them is processed', () => {
    const budget = new IngestBudget({ framesPerConnection: 3, maxBytes: 1000 });
    const a = flow();
    const lane = budget.lane(a);
    const done = [lane.take(10), lane.take(10)];
    assert.deepEqual(a.calls, []);
    done.push(lane.take(10));
    assert.deepEqual(a.calls, ['pause:connection']);
    // Frames of the read in progress still come and count.
    done.push(lane.take(10));
    assert.equal(lane.frames, 4);
    done[0]!();
    assert.deepEqual(a.calls, ['pause:connection'], 'still at the limit: 3 unprocessed');
    done[1]!();
    assert.deepEqual(a.calls, ['pause:connection', 'resume']);
    assert.equal(budget.heldBytes, 20);
  });

  it('a release counts once however often it is called', () => {
    const budget = new IngestBudget({ framesPerConnection: 2, maxBytes: 1000 });
    const lane = budget.lane(flow());
    const first = lane.take(100);
    lane.take(100);
    first();
    first();
    assert.equal(lane.frames, 1);
    assert.equal(budget.heldBytes, 100);
  });

  it('past the byte total pauses whoever sends next, and resumes them in order once under it', () => {
    const budget = new IngestBudget({ framesPerConnection: 10, maxBytes: 100 });
    const [a, b, c] = [flow(), flow(), flow()];
    const [la, lb, lc] = [budget.lane(a), budget.lane(b), budget.lane(c)];
    const big = la.take(60);
    lb.take(50);
    assert.deepEqual(b.calls, ['pause:total'], 'the frame that crossed the total pauses its sender');
    assert.deepEqual(a.calls, [], 'a sender that was under the total is left reading');
    lc.take(1);
    assert.deepEqual(c.calls, ['pause:total']);
    big();
    assert.deepEqual([a.calls, b.calls, c.calls], [[], ['pause:total', 'resume'], ['pause:total', 'resume']]);
    assert.equal(budget.heldBytes, 51);
  });

  it('a connection still at its own limit is not resumed when the total frees up', () => {
    const budget = new IngestBudget({ framesPerConnection: 1, maxBytes: 100 });
    const [a, b] = [flow(), flow()];
    const [la, lb] = [budget.lane(a), budget.lane(b)];
    const big = la.take(100);
    lb.take(1);
    assert.deepEqual(b.calls, ['pause:connection']);
    big();
    assert.deepEqual(a.calls, ['pause:connection', 'resume']);
    assert.deepEqual(b.calls, ['pause:connection'], 'its own frame is still unprocessed');
  });

  it('a closed connection gives back what it held and is never resumed', () => {
    const budget = new IngestBudget({ framesPerConnection: 5, maxBytes: 100 });
    const [a, b] = [flow(), flow()];
    const [la, lb] = [budget.lane(a), budget.lane(b)];
    const late = la.take(80);
    la.take(30);
    lb.take(1);
    assert.deepEqual([a.calls, b.calls], [['pause:total'], ['pause:total']]);
    la.close();
    assert.equal(budget.heldBytes, 1);
    assert.deepEqual(b.calls, ['pause:total', 'resume']);
    late();
    assert.equal(budget.heldBytes, 1, 'a release after the close does not count twice');
    assert.deepEqual(a.calls, ['pause:total']);
    la.take(1000);
    assert.deepEqual(a.calls, ['pause:total'], 'frames after the close are not counted');
    assert.equal(budget.heldBytes, 1);
  });
});
