import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnCli, type CliProcess } from '../helpers/farm';
import { gateDir, restartableFarm } from '../helpers/restartable-farm';
import { waitUntil } from '../helpers/wait-until';

/** The build's own lines in a `submit --wait` child's output (its own lines start with "spillway:"). */
const buildLines = (output: string) => output.split('\n').filter((l) => /^line \d+$/.test(l));
const numbered = (n: number) => Array.from({ length: n }, (_, i) => `line ${i + 1}`);

describe('cli: spillway submit --wait across a master restart, and what its exit code says', function () {
  this.timeout(120_000);
  const procs: CliProcess[] = [];
  afterEach(() => {
    for (const p of procs.splice(0)) p.child.kill('SIGKILL');
  });
  const submit = (httpUrl: string, args: string[], command: string): CliProcess => {
    const p = spawnCli(['submit', '--master', httpUrl, '--type', 'b2g', '--wait', ...args, '--shell', '--', command]);
    procs.push(p);
    return p;
  };

  it('follows on from its offset after the master is SIGKILLed and restarted: every line once, one reconnect line, the build exit code', async () => {
    const farm = await restartableFarm(procs, { lostAfterSec: 20 });
    const gates = gateDir();
    let master = await farm.startMaster();
    await farm.startAgent('follow-1');
    const wait = (gate: string) => `while [ ! -e ${gates}/${gate} ]; do sleep 0.01; done`;
    const p = submit(farm.httpUrl, ['--wait-timeout', '60'], [
      'for i in $(seq 1 40); do echo "line $i"; done',
      wait('a'),
      'for i in $(seq 41 100); do echo "line $i"; done',
      `touch ${gates}/printed`,
      wait('b'),
      'for i in $(seq 101 120); do echo "line $i"; done',
      'exit 4',
    ].join('; '));
    await p.waitForOutput(/line 40\n/);
    master.child.kill('SIGKILL');
    await master.exited;
    writeFileSync(join(gates, 'a'), '');
    await waitUntil(() => existsSync(join(gates, 'printed')), { what: 'lines 41-100 printed while the master is down' });
    master = await farm.startMaster();
    writeFileSync(join(gates, 'b'), '');
    const { code } = await p.exited;
    assert.equal(code, 4, p.output());
    assert.deepEqual(buildLines(p.output()), numbered(120), p.output());
    assert.equal(p.output().match(/reconnected to the master/g)?.length, 1, p.output());
    await farm.queue.close();
  });

  it('exits 75 when the master stays unreachable for longer than --wait-timeout', async () => {
    const farm = await restartableFarm(procs, { lostAfterSec: 20 });
    const gates = gateDir();
    const master = await farm.startMaster();
    await farm.startAgent('follow-2');
    const p = submit(farm.httpUrl, ['--wait-timeout', '1'], `echo started; while [ ! -e ${gates}/never ]; do sleep 0.05; done`);
    await p.waitForOutput(/started\n/);
    master.child.kill('SIGKILL');
    const { code } = await p.exited;
    assert.equal(code, 75, p.output());
    assert.match(p.output(), /lost contact with the master/);
    writeFileSync(join(gates, 'never'), '');
    await farm.queue.close();
  });

  it('says an attempt was lost with its agent, and exits with the code of the attempt that ran', async () => {
    const farm = await restartableFarm(procs, { lostAfterSec: 1.5 });
    const gates = gateDir();
    await farm.startMaster();
    const first = await farm.startAgent('doomed-1');
    const p = submit(farm.httpUrl, ['--attempts', '2'], `echo "attempt $SPILLWAY_ATTEMPT"; if [ "$SPILLWAY_ATTEMPT" = 1 ]; then while [ ! -e ${gates}/end ]; do sleep 0.05; done; fi; exit 6`);
    await p.waitForOutput(/attempt 1\n/);
    first.child.kill('SIGKILL');
    await first.exited;
    await farm.startAgent('spare-1');
    const { code } = await p.exited;
    writeFileSync(join(gates, 'end'), '');
    assert.equal(code, 6, p.output());
    assert.match(p.output(), /spillway: attempt 1 lost with agent doomed-1; retrying\n/);
    assert.match(p.output(), /spillway: attempt 2 on spare-1/);
    await farm.queue.close();
  });

  it('exits 125 for a job no agent could run, failed after unrunnableFailAfterSec', async () => {
    const farm = await restartableFarm(procs, { lostAfterSec: 20, jobTypes: { b2g: { attempts: 1, unrunnableFailAfterSec: 1 }, linux64: {} } });
    await farm.startMaster();
    await farm.startAgent('no-gpu');
    const p = submit(farm.httpUrl, ['--label', 'gpu'], 'true');
    assert.equal((await p.exited).code, 125, p.output());
    assert.match(p.output(), /no connected agent can run it/);
    await farm.queue.close();
  });

  it('exits 125 for a job that failed without running, and 130 for one removed from its queue', async () => {
    const farm = await restartableFarm(procs, { lostAfterSec: 20 });
    await farm.startMaster();
    await farm.startAgent('follow-3');
    const notRun = submit(farm.httpUrl, [], '/nonexistent/command');
    // A shell that cannot find the command exits 127: that is the build's own code.
    assert.equal((await notRun.exited).code, 127, notRun.output());
    const unstartable = spawnCli(['submit', '--master', farm.httpUrl, '--type', 'b2g', '--wait', '--', '/nonexistent/command']);
    procs.push(unstartable);
    assert.equal((await unstartable.exited).code, 125, unstartable.output());
    assert.match(unstartable.output(), /could not start/);

    // No agent serves linux64: the job waits until it is removed.
    const waiting = spawnCli(['submit', '--master', farm.httpUrl, '--type', 'linux64', '--wait', '--', 'true']);
    procs.push(waiting);
    const queued = await waiting.waitForOutput(/queued linux64 job (\S+)/);
    const id = /job (\S+)/.exec(queued)![1]!;
    await farm.removeJob('linux64', id);
    assert.equal((await waiting.exited).code, 130, waiting.output());
    assert.match(waiting.output(), /no longer exists/);
    await farm.queue.close();
  });
});
