import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CliProcess } from '../helpers/farm';
import { gateDir, restartableFarm } from '../helpers/restartable-farm';
import { waitUntil } from '../helpers/wait-until';

/** Lines "line 1".."line n" exactly once each, in order, and nothing else. */
function assertNumberedLines(log: string, n: number): void {
  const lines = log.split('\n').filter((l) => l !== '');
  const expected = Array.from({ length: n }, (_, i) => `line ${i + 1}`);
  assert.equal(lines.length, n, `expected ${n} lines, got ${lines.length}; first difference at ${lines.findIndex((l, i) => l !== expected[i])}`);
  assert.deepEqual(lines, expected);
}

describe('faults: build logs across a master SIGKILLed and restarted', function () {
  this.timeout(120_000);
  const procs: CliProcess[] = [];
  afterEach(() => {
    for (const p of procs.splice(0)) p.child.kill('SIGKILL');
  });

  it('stores every line of a build printing through the outage exactly once, in order, and its result', async () => {
    const farm = await restartableFarm(procs, { lostAfterSec: 20 });
    const gates = gateDir();
    let master = await farm.startMaster();
    await farm.startAgent('logger-1');
    const wait = (gate: string) => `while [ ! -e ${gates}/${gate} ]; do sleep 0.01; done`;
    // Lines 41-100 go to a master that has stopped reading (SIGSTOP, then SIGKILL): the socket
    // takes them, nobody stores them. The rest prints without pause through the outage and
    // the reconnect.
    const shell = [
      'for i in $(seq 1 40); do echo "line $i"; done',
      wait('a'),
      'for i in $(seq 41 100); do echo "line $i"; done',
      `touch ${gates}/printed`,
      wait('b'),
      `i=100; while [ ! -e ${gates}/stop ]; do i=$((i+1)); echo "line $i"; sleep 0.005; done; echo "$i" > ${gates}/count; exit 3`,
    ].join('; ');
    const job = await farm.queue.add('build', { shell }, { attempts: 1 });
    const id = job.id!;
    await farm.logUntil(id, (_c, all) => all.includes('line 40\n'));
    master.child.kill('SIGSTOP');
    writeFileSync(join(gates, 'a'), '');
    await waitUntil(() => existsSync(join(gates, 'printed')), { what: 'lines 41-100 printed' });
    master.child.kill('SIGKILL');
    await master.exited;
    writeFileSync(join(gates, 'b'), '');
    master = await farm.startMaster();
    // Output printed after the restart reaches the new master: the agent is back.
    await farm.logUntil(id, (c, all) => /line 1[5-9]\d\n/.test(all) || c.done);
    writeFileSync(join(gates, 'stop'), '');
    await farm.logUntil(id, (c) => c.done);
    const n = Number(readFileSync(join(gates, 'count'), 'utf8').trim());
    assertNumberedLines(await farm.fullLog(id), n);
    const rec = await farm.record(id);
    assert.equal(rec?.result, 'failure');
    assert.equal(rec?.exitCode, 3);
    await farm.queue.close();
  });

  it('delivers the result and the whole log of a build that finished while the master was down', async () => {
    const farm = await restartableFarm(procs, { lostAfterSec: 20 });
    const gates = gateDir();
    const master = await farm.startMaster();
    const stateDir = mkdtempSync(join(tmpdir(), 'spillway-agent-state-'));
    const agent = await farm.startAgent('logger-2', ['--state-dir', stateDir]);
    // About 480 kB printed during the outage: more than the agent holds in memory.
    const n = 50_000;
    const shell = `for i in $(seq 1 30); do echo "line $i"; done; while [ ! -e ${gates}/go ]; do sleep 0.01; done; seq 31 ${n} | sed 's/^/line /'; exit 7`;
    const job = await farm.queue.add('build', { shell }, { attempts: 1 });
    const id = job.id!;
    await farm.logUntil(id, (_c, all) => all.includes('line 30\n'));
    master.child.kill('SIGKILL');
    await master.exited;
    writeFileSync(join(gates, 'go'), '');
    await agent.waitForOutput(/agent\.job-finished/);
    const spilled = readdirSync(stateDir);
    assert.equal(spilled.length, 1, 'the unconfirmed output went to a file in the state dir');
    assert.equal(statSync(stateDir).mode & 0o777, 0o700, 'builds cannot reach the state dir');
    assert.equal(statSync(join(stateDir, spilled[0]!)).mode & 0o777, 0o600);
    await farm.startMaster();
    await farm.logUntil(id, (c) => c.done);
    assertNumberedLines(await farm.fullLog(id), n);
    const rec = await farm.record(id);
    assert.equal(rec?.result, 'failure');
    assert.equal(rec?.exitCode, 7);
    await waitUntil(() => readdirSync(stateDir).length === 0, { what: 'the spilled log removed once acknowledged' });
    await farm.queue.close();
  });
});
