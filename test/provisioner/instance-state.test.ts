import { strict as assert } from 'node:assert';
import { INSTANCE_STATES, type InstanceState } from '../../src/provisioner/instance';
import { transition, type InstanceEvent } from '../../src/provisioner/instance-state';

/** One event of every type; typed as a full record, so a new event type must be added here. */
const EVENTS: { [T in InstanceEvent['type']]: Extract<InstanceEvent, { type: T }> } = {
  wake: { type: 'wake' },
  'wake-deferred': { type: 'wake-deferred', reason: 'RequestLimitExceeded' },
  launch: { type: 'launch' },
  started: { type: 'started' },
  registered: { type: 'registered', agent: 'a' },
  'job-started': { type: 'job-started' },
  'jobs-done': { type: 'jobs-done', at: 1 },
  drain: { type: 'drain', reason: 'quiet' },
  notice: { type: 'notice', notice: 'spot-interruption' },
  undrain: { type: 'undrain' },
  suspend: { type: 'suspend', reason: 'quiet' },
  stopped: { type: 'stopped', hibernated: false, reason: 'quiet' },
  fail: { type: 'fail', reason: 'boot timeout' },
  terminated: { type: 'terminated', reason: 'gone' },
};

type Row = Partial<Record<InstanceEvent['type'], InstanceState>>;
const ENDS: Row = { fail: 'failed', terminated: 'terminated' };

/**
 * The whole table, written out independently of the implementation: for each state (and for no
 * record yet), where each event leads. An event missing from a row is refused there.
 */
const EXPECTED: Record<InstanceState | 'none', Row> = {
  none: { launch: 'launching' },
  launching: { started: 'booting', registered: 'idle', notice: 'retiring', ...ENDS },
  waking: { started: 'booting', registered: 'idle', notice: 'retiring', 'wake-deferred': 'suspended', ...ENDS },
  booting: { registered: 'idle', 'job-started': 'busy', notice: 'retiring', ...ENDS },
  idle: { 'job-started': 'busy', drain: 'draining', notice: 'retiring', ...ENDS },
  busy: { 'jobs-done': 'idle', notice: 'retiring', ...ENDS },
  draining: { undrain: 'idle', suspend: 'suspending', notice: 'retiring', ...ENDS },
  retiring: { notice: 'retiring', suspend: 'suspending', ...ENDS },
  suspending: { stopped: 'suspended', ...ENDS },
  suspended: { wake: 'waking', registered: 'idle', terminated: 'terminated' },
  failed: { registered: 'idle', suspend: 'suspending', stopped: 'suspended', terminated: 'terminated' },
  terminated: {},
};

describe('provisioner/instance-state transition()', () => {
  it('has a row for every state', () => {
    assert.deepEqual(Object.keys(EXPECTED).filter((s) => s !== 'none').sort(), [...INSTANCE_STATES].sort());
  });

  for (const state of ['none', ...INSTANCE_STATES] as const) {
    it(`from ${state}: every event goes where the table says, or is refused`, () => {
      const from = state === 'none' ? undefined : state;
      for (const event of Object.values(EVENTS)) {
        const next = EXPECTED[state][event.type];
        const got = transition(from, event);
        if (next) {
          assert.deepEqual(got, { ok: true, next }, `${state} x ${event.type}`);
        } else {
          const reason = from === undefined ? `no such instance for ${event.type}` : `${event.type} is not allowed in state ${from}`;
          assert.deepEqual(got, { ok: false, reason }, `${state} x ${event.type}`);
        }
      }
    });
  }

  it('never takes a retiring instance back to work, and nothing leaves terminated', () => {
    for (const event of Object.values(EVENTS)) {
      const r = transition('retiring', event);
      if (r.ok) assert.ok(!['idle', 'busy', 'draining'].includes(r.next), `retiring x ${event.type} -> ${r.next}`);
      assert.equal(transition('terminated', event).ok, false);
    }
  });
});
