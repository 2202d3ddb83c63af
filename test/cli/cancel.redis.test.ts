import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { groupHasLiveMembers } from '../../src/executor/process-group';
import type { MasterFrame } from '../../src/protocol';
import { controlFarm, READ, running, SUBMIT } from '../helpers/control-farm';
import { spawnCli, type CliProcess } from '../helpers/farm';
import { RawAgent } from '../helpers/raw-agent';

const SUBMITTER = `submit token ${createHash('sha256').update(SUBMIT).digest('hex').slice(0, 8)}`;
/** A build whose process group is a shell and a sleep; it says their pids. */
const SLEEPER = 'sleep 600 & echo "pids $$ $!"; wait';
const pidsOf = (m: RegExpExecArray) => [Number(m[1]), Number(m[2])] as const;

/**
 * Cancelling running builds on real processes: a master (`spillway master`), agents
 * (`spillway agent`), the CLI, and a hand-driven raw agent for the hostile part.
 */
describe('cancel: a running build is killed on its agent and recorded cancelled, by whom', function () {
  this.timeout(90_000);
  const procs: CliProcess[] = [];
  const raws: RawAgent[] = [];
  afterEach(() => {
    for (const r of raws.splice(0)) r.ws.terminate();
    for (const p of procs.splice(0)) p.child.kill('SIGKILL');
  });
  const cli = (args: string[]): CliProcess => {
    const p = spawnCli(args);
    procs.push(p);
    return p;
  };

  it('ignores what others send about it (a read token, an agent that does not hold it, a cancel frame from an agent), then kills its process group on a real cancel', async () => {
    const farm = await controlFarm(procs);
    await farm.startAgent('holder-1', ['--kill-grace-sec', '600']);
    const id = await farm.submit({ shell: SLEEPER, attempts: 3 });
    const [sh, sleep] = pidsOf(await farm.logUntil(id, /pids (\d+) (\d+)\n/));
    const held = await farm.view(id);
    assert.equal(held.state, 'active');

    // A read token may not cancel, nor may an agent in any way: the job and its processes stand.
    const read = await farm.call<{ error: { code: string } }>('POST', `/api/jobs/${id}/cancel`, {}, READ);
    assert.equal(read.status, 403);
    assert.equal((await farm.call('POST', `/api/jobs/no-such-job/cancel`)).status, 404);
    const retryRunning = await farm.call<{ error: { code: string } }>('POST', `/api/jobs/${id}/retry`);
    assert.equal(retryRunning.status, 409);
    assert.equal(retryRunning.body.error.code, 'SPILLWAY_E_JOB_NOT_FINISHED');
    const raw = await RawAgent.connect(farm.masters[0]!.ws, { name: 'intruder' });
    raws.push(raw);
    assert.ok(raw.welcomed);
    // Cancel frames go master -> agent only: from an agent it is not even a frame.
    raw.send({ type: 'cancel', queue: 'b2g', jobId: id, reason: 'forged', report: true });
    const refused = await raw.next('error');
    assert.equal(refused.code, 'SPILLWAY_E_FRAME');
    assert.match(refused.message, /invalid "cancel" frame/);
    // A "finished" (as a cancelled build would report) for a job held by another agent: refused like any other frame.
    const forged = { exitCode: null, signal: 'SIGTERM', timedOut: false, startedAt: 1, finishedAt: 2 };
    raw.send({ type: 'finished', queue: 'b2g', jobId: id, lockToken: 'guessed-token', result: forged });
    await raw.next('ack');
    const after = await farm.view(id);
    assert.equal(after.state, 'active');
    assert.deepEqual(after.builds.map((b) => [b.agent, b.state]), [['holder-1', 'running']]);
    assert.ok(running(sh) && running(sleep), 'the build still runs');

    const cancel = cli(['cancel', id, '--master', farm.base, '--reason', 'wrong branch', '--token', SUBMIT]);
    assert.equal((await cancel.exited).code, 0, cancel.output());
    assert.match(cancel.output(), new RegExp(`^${id} cancelled \\(was running\\)\\n$`));

    // Recorded once its agent reported the kill, which comes only when the group is gone;
    // with a 600 s grace that is the SIGTERM's doing.
    const v = await farm.recorded(id);
    assert.equal(running(sh), false, 'the shell is gone');
    assert.equal(running(sleep), false, 'its background sleep is gone');
    assert.equal(groupHasLiveMembers(sh), false, 'nothing of the process group runs');
    assert.equal(v.state, 'failed');
    assert.equal(v.failedReason, `cancelled by ${SUBMITTER}: wrong branch`);
    assert.equal(v.cancelledBy, SUBMITTER);
    assert.equal(v.cancelReason, 'wrong branch');
    assert.equal(v.builds.length, 1, 'not retried, although it had attempts left');
    assert.deepEqual([v.builds[0]!.result, v.builds[0]!.reason, v.builds[0]!.signal], ['cancelled', `cancelled by ${SUBMITTER}: wrong branch`, 'SIGTERM']);
    assert.equal(raw.frames.some((f: MasterFrame) => f.type === 'cancel'), false, 'the cancel went to the holder only');

    // The agent's executor is free again: it takes the next job.
    const next = cli(['submit', '--master', farm.base, '--token', SUBMIT, '--type', 'b2g', '--wait', '--', 'echo', 'next one']);
    assert.equal((await next.exited).code, 0, next.output());
    assert.match(next.output(), /next one\n/);
    assert.match(next.output(), /on holder-1 \(on-prem\)/);
    assert.equal((await farm.view(id)).builds.length, 1, 'still not retried');
  });

  it('SIGKILLs a build that ignores SIGTERM once the agent\'s grace is over, and `submit --wait` of it exits 130', async () => {
    const farm = await controlFarm(procs);
    await farm.startAgent('holder-2', ['--kill-grace-sec', '1']);
    const wait = cli(['submit', '--master', farm.base, '--token', SUBMIT, '--type', 'b2g', '--wait', '--shell', '--', `trap "" TERM; ${SLEEPER}`]);
    const queued = await wait.waitForOutput(/queued b2g job (\S+)/);
    const id = /job (\S+)/.exec(queued)![1]!;
    const m = /pids (\d+) (\d+)\n/.exec(await wait.waitForOutput(/pids \d+ \d+\n/))!;
    const [sh] = pidsOf(m);
    const cancel = cli(['cancel', id, '--master', farm.base, '--token', SUBMIT]);
    assert.equal((await cancel.exited).code, 0, cancel.output());
    assert.equal((await wait.exited).code, 130, wait.output());
    assert.match(wait.output(), new RegExp(`job ${id} failed on holder-2 \\(on-prem\\): cancelled by ${SUBMITTER}\\n`));
    const v = await farm.recorded(id);
    assert.equal(v.builds[0]!.result, 'cancelled');
    assert.equal(v.builds[0]!.signal, 'SIGKILL', 'TERM was ignored: the grace ran out');
    assert.equal(groupHasLiveMembers(sh), false);
  });

  it('cancels a job waiting for an agent (none serves its type): `submit --wait` exits 130, and `spillway status ID` says who', async () => {
    const farm = await controlFarm(procs);
    const wait = cli(['submit', '--master', farm.base, '--token', SUBMIT, '--type', 'linux64', '--priority', '7', '--wait', '--', 'true']);
    const id = /job (\S+)/.exec(await wait.waitForOutput(/queued linux64 job (\S+)/))![1]!;
    const cancel = cli(['cancel', id, '--master', farm.base, '--token', SUBMIT, '--reason', 'not needed']);
    assert.equal((await cancel.exited).code, 0, cancel.output());
    assert.match(cancel.output(), /cancelled \(was waiting\)/);
    assert.equal((await wait.exited).code, 130, wait.output());
    const status = cli(['status', id, '--master', farm.base, '--token', READ]);
    assert.equal((await status.exited).code, 0, status.output());
    assert.match(status.output(), /state {8}failed \(cancelled\)\n/);
    assert.match(status.output(), /priority {5}7\n/);
    assert.match(status.output(), new RegExp(`cancelled by ${SUBMITTER} \\(not needed\\)\\n`));
    const again = cli(['cancel', id, '--master', farm.base, '--token', SUBMIT]);
    assert.equal((await again.exited).code, 2, again.output());
    assert.match(again.output(), /master answered 409: job \S+ has finished: cancelled/);
    const unknown = cli(['cancel', 'no-such-job', '--master', farm.base, '--token', SUBMIT]);
    assert.equal((await unknown.exited).code, 2, unknown.output());
    const unreachable = cli(['cancel', id, '--master', 'http://127.0.0.1:1', '--token', SUBMIT]);
    assert.equal((await unreachable.exited).code, 75, unreachable.output());
    assert.match(unreachable.output(), /cannot reach the master/);
  });
});
