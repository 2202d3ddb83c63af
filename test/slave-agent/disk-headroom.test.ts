import assert from 'node:assert/strict';
import { parseAgentFrame } from '../../src/protocol';
import { DiskHeadroom, type DiskState } from '../../src/slave-agent/disk-headroom';
import { FakeClock } from '../fakes/fake-clock';
import { captureLogs } from '../helpers/farm';

const MIB = 1024 * 1024;

describe('DiskHeadroom (free space measured by a fake)', () => {
  function headroom(free: Record<string, number>, cache: { bytes: number }) {
    const changes: DiskState[] = [];
    const logs = captureLogs();
    const h = new DiskHeadroom({
      paths: () => ['/work', '/cache'],
      minFreeMb: 100,
      everyMs: 1000,
      trim: async (bytes) => {
        const freed = Math.min(bytes, cache.bytes);
        cache.bytes -= freed;
        free['/cache']! += freed;
        return freed;
      },
      onChange: (s) => changes.push(s),
      clock: new FakeClock(),
      log: logs.log,
      freeBytes: async (p) => free[p]!,
    });
    return { h, changes, logs };
  }

  it('evicts from the cache first and stays open when that makes room', async () => {
    const free = { '/work': 500 * MIB, '/cache': 40 * MIB };
    const { h, changes, logs } = headroom(free, { bytes: 200 * MIB });
    const s = await h.check();
    assert.equal(s.full, false);
    assert.equal(free['/cache'], 100 * MIB, 'trimmed exactly the shortfall');
    assert.deepEqual(changes, []);
    assert.ok(logs.entries.some((e) => e.event === 'agent.cache-trimmed' && e.freedBytes === 60 * MIB));
  });

  it('is full when eviction is not enough, names the short filesystem, and recovers once space is back', async () => {
    const free = { '/work': 30 * MIB, '/cache': 500 * MIB };
    const { h, changes } = headroom(free, { bytes: 10 * MIB });
    assert.deepEqual(await h.check(), { full: true, path: '/work', freeMb: 30, minFreeMb: 100 });
    await h.check();
    assert.equal(changes.length, 1, 'told once per change, not per check');
    free['/work'] = 150 * MIB;
    assert.equal((await h.check()).full, false);
    assert.deepEqual(changes.map((c) => c.full), [true, false]);
  });

  it('the disk frame is validated like any other', () => {
    assert.equal(parseAgentFrame(JSON.stringify({ type: 'disk', full: true, path: '/w', freeMb: 1, minFreeMb: 100 })).ok, true);
    const bad = parseAgentFrame(JSON.stringify({ type: 'disk', full: 'yes', path: '/w', freeMb: -1, minFreeMb: 100 }));
    assert.equal(bad.ok, false);
    assert.equal(parseAgentFrame(JSON.stringify({ type: 'disk', full: true, path: '/w', freeMb: 1, minFreeMb: 1, extra: 1 })).ok, false);
  });
});
