import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { controlFarm, READ, SUBMIT } from '../helpers/control-farm';
import { spawnCli, type CliProcess } from '../helpers/farm';
import { gateDir } from '../helpers/restartable-farm';

/** `spillway retry` and `spillway logs [--follow]` against a real master and agent. */
describe('cli: spillway retry and spillway logs', function () {
  this.timeout(90_000);
  const procs: CliProcess[] = [];
  afterEach(() => {
    for (const p of procs.splice(0)) p.child.kill('SIGKILL');
  });
  const cli = (args: string[], env: Record<string, string> = {}): CliProcess => {
    const p = spawnCli(args, env);
    procs.push(p);
    return p;
  };

  it('retries a failed job with the same payload and priority, links the two, and exits with the retry\'s code with --wait', async () => {
    const farm = await controlFarm(procs);
    await farm.startAgent('retry-1');
    const first = cli(['submit', '--master', farm.base, '--type', 'b2g', '--priority', '4', '--wait', '--shell', '--', 'echo "attempt of $SPILLWAY_JOB_ID"; exit 3'], { SPILLWAY_TOKEN: SUBMIT });
    assert.equal((await first.exited).code, 3, first.output());
    const old = /queued b2g job (\S+)/.exec(first.output())![1]!;

    const hostile = cli(['retry', old, '--master', farm.base, '--token', READ]);
    assert.equal((await hostile.exited).code, 2, hostile.output());
    assert.match(hostile.output(), /master answered 403/);

    const again = cli(['retry', old, '--master', farm.base, '--wait'], { SPILLWAY_TOKEN: SUBMIT });
    assert.equal((await again.exited).code, 3, again.output());
    const fresh = new RegExp(`queued b2g job (\\S+), a retry of ${old}`).exec(again.output())![1]!;
    assert.match(again.output(), new RegExp(`attempt of ${fresh}\\n`), 'the same command, run as the new job');
    const [o, n] = [await farm.view(old), await farm.view(fresh)];
    assert.equal(o.retriedAs, fresh);
    assert.equal(n.retryOf, old);
    assert.equal(n.priority, 4);
    assert.equal(n.exitCode, 3);

    // Retried once: a second retry names the first one and queues nothing.
    const twice = cli(['retry', old, '--master', farm.base], { SPILLWAY_TOKEN: SUBMIT });
    assert.equal((await twice.exited).code, 0, twice.output());
    assert.match(twice.output(), new RegExp(`was retried before, as ${fresh}; not queued again`));
    assert.match(twice.output(), new RegExp(`^${fresh}$`, 'm'));
    const status = cli(['status', fresh, '--master', farm.base, '--token', READ]);
    assert.equal((await status.exited).code, 0, status.output());
    assert.match(status.output(), new RegExp(`retry of {5}${old}\\n`));
    assert.match(status.output(), /priority {5}4\n/);
    assert.match(status.output(), /ATTEMPTS\n/);
  });

  it('prints a job\'s raw log, and with --follow streams a running build\'s log until it ends, exiting with its code', async () => {
    const farm = await controlFarm(procs);
    await farm.startAgent('logs-1');
    const gates = gateDir();
    const id = await farm.submit({
      shell: `echo one; echo two >&2; while [ ! -e ${gates}/go ]; do sleep 0.02; done; echo three; exit 5`,
    });
    await farm.logUntil(id, /two\n/);
    const follow = cli(['logs', id, '--follow', '--master', farm.base, '--token', READ]);
    await follow.waitForOutput(/one\n/);
    // The stored log so far, raw, as log.txt serves it.
    const now = cli(['logs', id, '--master', farm.base, '--token', READ]);
    assert.equal((await now.exited).code, 0, now.output());
    assert.equal(now.output(), 'one\ntwo\n');
    writeFileSync(join(gates, 'go'), '');
    assert.equal((await follow.exited).code, 5, follow.output());
    const printed = follow.output().split('\n').filter((l) => !l.startsWith('spillway:'));
    assert.deepEqual(printed.filter(Boolean), ['one', 'two', 'three'], follow.output());
    assert.match(follow.output(), /spillway: attempt 1 on logs-1 \(on-prem\)\n/);
    const done = cli(['logs', id, '--master', farm.base, '--token', READ]);
    assert.equal((await done.exited).code, 0);
    assert.equal(done.output(), 'one\ntwo\nthree\n');

    const unknown = cli(['logs', 'no-such-job', '--master', farm.base, '--token', READ]);
    assert.equal((await unknown.exited).code, 2, unknown.output());
    assert.match(unknown.output(), /master answered 404/);
    const noToken = cli(['logs', id, '--master', farm.base]);
    assert.equal((await noToken.exited).code, 2, noToken.output());
    const down = cli(['logs', id, '--follow', '--master', 'http://127.0.0.1:1', '--token', READ]);
    assert.equal((await down.exited).code, 75, down.output());
  });
});
