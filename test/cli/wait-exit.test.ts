import assert from 'node:assert/strict';
import { WaitExit, waitExitOf } from '../../src/cli/wait-exit';
import type { BuildRecord, JobView } from '../../src/master';

type Case = [string, Pick<JobView, 'state' | 'exitCode' | 'failedReason'>, BuildRecord['result'][], number];

const build = (attempt: number, result: BuildRecord['result']): BuildRecord => ({
  id: 'j',
  type: 'b2g',
  attempt,
  agent: 'a',
  location: 'onprem',
  instanceId: null,
  state: 'finished',
  queuedAt: 0,
  dispatchedAt: 0,
  startedAt: 0,
  finishedAt: 1,
  waitMs: 0,
  durationMs: 1,
  result,
  exitCode: null,
  signal: null,
  reason: null,
  logBytes: 0,
});

describe('cli/wait-exit: what `submit --wait` exits with', () => {
  const cases: Case[] = [
    ['completed: the build exit code', { state: 'completed', exitCode: 0, failedReason: null }, ['success'], 0],
    ['ran and failed: its exit code', { state: 'failed', exitCode: 5, failedReason: 'exited 5' }, ['failure'], 5],
    ['timed out: 124', { state: 'failed', exitCode: 124, failedReason: 'timed out' }, ['timeout'], 124],
    ['killed by a signal: 128+N', { state: 'failed', exitCode: 137, failedReason: 'killed by SIGKILL' }, ['signal'], 137],
    ['lost on one attempt, ran on the next', { state: 'failed', exitCode: 3, failedReason: 'exited 3' }, ['lost', 'failure'], 3],
    ['invalid job data: never ran', { state: 'failed', exitCode: 1, failedReason: 'invalid job data: argv: expected array' }, [], WaitExit.notRun],
    ['command could not start', { state: 'failed', exitCode: 127, failedReason: 'could not start: ENOENT' }, ['error'], WaitExit.notRun],
    ['agent lost on every attempt', { state: 'failed', exitCode: 1, failedReason: 'agent lost' }, ['lost', 'lost'], WaitExit.notRun],
    ['cancelled', { state: 'failed', exitCode: 1, failedReason: 'cancelled by admin' }, ['cancelled'], WaitExit.cancelled],
  ];
  for (const [name, view, results, code] of cases) {
    it(`${name} → ${code}`, () => {
      assert.equal(waitExitOf({ ...view, builds: results.map((r, i) => build(i + 1, r)) }).code, code);
    });
  }

  it('keeps its own codes apart from each other and from 124 (timeout)', () => {
    const codes = Object.values(WaitExit);
    assert.equal(new Set([...codes, 124]).size, codes.length + 1);
  });
});
