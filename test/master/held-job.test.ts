import assert from 'node:assert/strict';
import type { BuildIdentity } from '../../src/master/build-store';
import {
  HELD_EVENTS,
  HELD_KINDS,
  HELD_TABLE,
  transition,
  type HeldEvent,
  type HeldEventType,
  type HeldKind,
  type HeldState,
  type Reporter,
} from '../../src/master/held-jobs/held-job';

const LOCK = 'lock-a';
const owner = { connId: 'conn-1', agentKey: 'name:rack-1' };
const holder: Reporter = { ...owner, token: LOCK };
const build: BuildIdentity = { id: '7', type: 'b2g', attempt: 1, agent: 'rack-1', location: 'onprem', instanceId: null, queuedAt: 1, dispatchedAt: 2 };
const placed = { lock: LOCK, owner, build, startedAt: null, notice: null };
const request = { by: 'submit token 3f9a1c2e', reason: 'superseded', at: 7 };

const STATES: Record<HeldKind, HeldState> = {
  pending: { kind: 'pending', lock: LOCK },
  assigned: { kind: 'assigned', ...placed },
  running: { kind: 'running', ...placed, startedAt: 5 },
  orphaned: { kind: 'orphaned', ...placed, startedAt: 5, since: 9 },
  cancelling: { kind: 'cancelling', ...placed, startedAt: 5, cancel: request },
  settled: { kind: 'settled', how: 'finished' },
};

/** Each event as the job's rightful holder (or the master) would send it. */
const EVENTS: Record<HeldEventType, HeldEvent> = {
  take: { type: 'take', lock: LOCK },
  adopt: { type: 'adopt', lock: LOCK, owner, build, startedAt: 5 },
  place: { type: 'place', owner, build },
  start: { type: 'start', by: holder, at: 5 },
  log: { type: 'log', by: holder },
  finish: { type: 'finish', by: holder },
  decline: { type: 'decline', by: holder },
  disconnect: { type: 'disconnect', connId: owner.connId, at: 9 },
  reattach: { type: 'reattach', by: { ...holder, connId: 'conn-2' }, build },
  notice: { type: 'notice', notice: 'rebalance' },
  lose: { type: 'lose' },
  preempt: { type: 'preempt' },
  'lock-lost': { type: 'lock-lost' },
  'give-back': { type: 'give-back' },
  park: { type: 'park' },
  cancel: { type: 'cancel', request },
};

type Cell = HeldKind | '-';
/** The whole table, written out: rows are states ("none" = not held), columns the events above. */
const EXPECTED: Record<HeldKind | 'none', Record<HeldEventType, Cell>> = {
  none: { take: 'pending', adopt: 'running', place: '-', start: '-', decline: '-', log: '-', finish: '-', disconnect: '-', reattach: '-', notice: '-', lose: '-', preempt: '-', 'lock-lost': '-', 'give-back': '-', park: '-', cancel: '-' },
  pending: { take: '-', adopt: '-', place: 'assigned', start: '-', decline: '-', log: '-', finish: '-', disconnect: '-', reattach: '-', notice: '-', lose: '-', preempt: '-', 'lock-lost': 'settled', 'give-back': 'settled', park: 'settled', cancel: 'settled' },
  assigned: { take: '-', adopt: '-', place: '-', start: 'running', decline: 'pending', log: 'assigned', finish: 'settled', disconnect: 'orphaned', reattach: 'assigned', notice: 'assigned', lose: 'settled', preempt: 'settled', 'lock-lost': 'settled', 'give-back': '-', park: '-', cancel: 'cancelling' },
  running: { take: '-', adopt: '-', place: '-', start: '-', decline: '-', log: 'running', finish: 'settled', disconnect: 'orphaned', reattach: 'running', notice: 'running', lose: 'settled', preempt: 'settled', 'lock-lost': 'settled', 'give-back': '-', park: '-', cancel: 'cancelling' },
  orphaned: { take: '-', adopt: '-', place: '-', start: '-', decline: '-', log: '-', finish: 'settled', disconnect: '-', reattach: 'running', notice: 'orphaned', lose: 'settled', preempt: 'settled', 'lock-lost': 'settled', 'give-back': '-', park: '-', cancel: 'settled' },
  cancelling: { take: '-', adopt: '-', place: '-', start: 'cancelling', decline: 'settled', log: 'cancelling', finish: 'settled', disconnect: 'settled', reattach: '-', notice: 'cancelling', lose: 'settled', preempt: 'settled', 'lock-lost': 'settled', 'give-back': '-', park: '-', cancel: '-' },
  settled: { take: '-', adopt: '-', place: '-', start: '-', decline: '-', log: '-', finish: '-', disconnect: '-', reattach: '-', notice: '-', lose: '-', preempt: '-', 'lock-lost': '-', 'give-back': '-', park: '-', cancel: '-' },
};

describe('held job: transition table', () => {
  it('names every event and state', () => {
    assert.deepEqual(Object.keys(HELD_TABLE).sort(), [...HELD_EVENTS].sort());
    assert.deepEqual(Object.keys(EVENTS).sort(), [...HELD_EVENTS].sort());
    assert.deepEqual(Object.keys(STATES).sort(), [...HELD_KINDS].sort());
  });

  for (const row of ['none', ...HELD_KINDS] as const) {
    for (const type of HELD_EVENTS) {
      const want = EXPECTED[row][type];
      it(`${row} + ${type} → ${want === '-' ? 'refused' : want}`, () => {
        const t = transition(row === 'none' ? undefined : STATES[row], EVENTS[type]);
        if (want === '-') {
          assert.ok(!t.ok, `expected a refusal, got ${JSON.stringify(t)}`);
          assert.equal(t.code, 'wrong-state');
        } else {
          assert.ok(t.ok, t.ok ? '' : t.reason);
          assert.equal(t.next.kind, want);
        }
        // The declared table and the function agree.
        assert.equal(HELD_TABLE[type].includes(row === 'none' ? undefined : row), want !== '-');
      });
    }
  }
});

describe('held job: only the holder may report', () => {
  const stranger: Reporter = { connId: 'conn-9', agentKey: 'name:rogue', token: LOCK };
  const guessed: Reporter = { ...holder, token: 'lock-guess' };

  for (const type of ['start', 'decline', 'log', 'finish'] as const) {
    it(`${type} from another agent's connection is refused (not-holder), even with the right token`, () => {
      const from = type === 'start' || type === 'decline' ? STATES.assigned : STATES.running;
      const t = transition(from, { ...EVENTS[type], by: stranger } as HeldEvent);
      assert.ok(!t.ok);
      assert.equal(t.code, 'not-holder');
    });
  }

  it('a decline quoting another lock token is refused even from the holder (wrong-token): a stale attempt cannot unplace the current one', () => {
    const t = transition(STATES.assigned, { type: 'decline', by: guessed });
    assert.ok(!t.ok);
    assert.equal(t.code, 'wrong-token');
  });

  it('a result quoting another lock token is refused even from the holder (wrong-token)', () => {
    const t = transition(STATES.running, { type: 'finish', by: guessed });
    assert.ok(!t.ok);
    assert.equal(t.code, 'wrong-token');
  });

  it('the same agent on a new connection may finish an orphaned build, another agent may not', () => {
    const back: Reporter = { ...holder, connId: 'conn-2' };
    assert.equal(transition(STATES.orphaned, { type: 'finish', by: back }).ok, true);
    assert.equal(transition(STATES.running, { type: 'finish', by: back }).ok, false, 'not while the old connection still holds it');
    const other = transition(STATES.orphaned, { type: 'finish', by: { ...stranger, connId: 'conn-2' } });
    assert.ok(!other.ok);
    assert.equal(other.code, 'not-holder');
  });

  it('reattach moves the build to the new connection only for the same agent and lock', () => {
    const t = transition(STATES.orphaned, EVENTS.reattach);
    assert.ok(t.ok && t.next.kind === 'running');
    assert.equal(t.ok && 'owner' in t.next && t.next.owner.connId, 'conn-2');
    assert.equal(transition(STATES.orphaned, { type: 'reattach', by: { ...stranger, connId: 'conn-2' }, build }).ok, false);
    assert.equal(transition(STATES.orphaned, { type: 'reattach', by: { ...guessed, connId: 'conn-2' }, build }).ok, false);
  });

  it('a disconnect of a connection that does not hold the job changes nothing', () => {
    const t = transition(STATES.running, { type: 'disconnect', connId: 'conn-9', at: 1 });
    assert.ok(!t.ok);
    assert.equal(t.code, 'not-holder');
  });

  it('an interruption notice is not softened by a later rebalance recommendation', () => {
    const t = transition({ ...STATES.running, notice: 'spot-interruption' } as HeldState, { type: 'notice', notice: 'rebalance' });
    assert.ok(t.ok && 'notice' in t.next && t.next.notice === 'spot-interruption');
  });
});

describe('held job: cancel', () => {
  const stranger: Reporter = { connId: 'conn-9', agentKey: 'name:rogue', token: LOCK };

  it('every way out of cancelling settles the job as cancelled, never as finished, lost or preempted (so it is never retried)', () => {
    for (const type of ['finish', 'decline', 'disconnect', 'lose', 'preempt', 'lock-lost'] as const) {
      const t = transition(STATES.cancelling, EVENTS[type]);
      assert.ok(t.ok && t.next.kind === 'settled', type);
      assert.equal(t.ok && t.next.kind === 'settled' && t.next.how, 'cancelled', type);
    }
  });

  it('a waiting (pending) or orphaned job is cancelled at once; one on its agent waits there for the kill, keeping its owner and who cancelled it', () => {
    for (const from of ['pending', 'orphaned'] as const) {
      const t = transition(STATES[from], EVENTS.cancel);
      assert.ok(t.ok && t.next.kind === 'settled' && t.next.how === 'cancelled', from);
    }
    const t = transition(STATES.running, EVENTS.cancel);
    assert.ok(t.ok && t.next.kind === 'cancelling');
    assert.ok(t.ok && t.next.kind === 'cancelling' && t.next.owner.connId === owner.connId && t.next.cancel.by === request.by);
  });

  for (const type of ['finish', 'decline', 'start', 'log'] as const) {
    it(`a cancelled build's ${type} counts only from its holder: another agent's (even with the right token) is refused, the job stays cancelling`, () => {
      const t = transition(STATES.cancelling, { ...EVENTS[type], by: stranger } as HeldEvent);
      assert.ok(!t.ok);
      assert.equal(t.code, 'not-holder');
      const stale = transition(STATES.cancelling, { ...EVENTS[type], by: { ...holder, token: 'lock-guess' } } as HeldEvent);
      assert.ok(!stale.ok);
      assert.equal(stale.code, 'wrong-token');
    });
  }

  it('the disconnect of a connection that does not hold the cancelled build changes nothing', () => {
    const t = transition(STATES.cancelling, { type: 'disconnect', connId: 'conn-9', at: 1 });
    assert.ok(!t.ok);
    assert.equal(t.code, 'not-holder');
  });

  it('a "started" crossing the cancel on the wire keeps the job cancelling and notes when it started', () => {
    const t = transition({ ...STATES.cancelling, startedAt: null } as HeldState, { type: 'start', by: holder, at: 42 });
    assert.ok(t.ok && t.next.kind === 'cancelling' && t.next.startedAt === 42);
  });
});
