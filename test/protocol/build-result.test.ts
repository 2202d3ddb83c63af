import { strict as assert } from 'node:assert';
import { describeResult, exitCodeOf, outcomeOf, type BuildResult } from '../../src/protocol';

describe('protocol/build-result', () => {
  const base: BuildResult = { exitCode: 0, signal: null, timedOut: false, startedAt: 0, finishedAt: 10 };

  // The wording is what users read: BullMQ's failedReason, the builds API's reason, the CLI.
  it('describes each way a build can end in one line', () => {
    assert.equal(describeResult(base), 'exited 0');
    assert.equal(describeResult({ ...base, exitCode: 2 }), 'exited 2');
    assert.equal(describeResult({ ...base, exitCode: null, signal: 'SIGSEGV' }), 'killed by SIGSEGV');
    assert.equal(describeResult({ ...base, exitCode: null, signal: 'SIGTERM', timedOut: true }, 30), 'timed out after 30s');
    assert.equal(describeResult({ ...base, exitCode: null, signal: 'SIGTERM', timedOut: true }), 'timed out');
    assert.equal(describeResult({ ...base, exitCode: null, error: 'spawn x ENOENT' }), 'could not start: spawn x ENOENT');
    const limits = 'cgroup-v2: memory 64 MiB';
    assert.equal(describeResult({ ...base, exitCode: null, signal: 'SIGKILL', oomKilled: true, limits }), `out of memory (${limits})`);
    assert.equal(describeResult({ ...base, exitCode: 2, oomKilled: true }), 'out of memory');
  });

  it('names the outcome, the OOM kill winning over the signal it caused', () => {
    assert.equal(outcomeOf({ ...base, exitCode: null, signal: 'SIGKILL', oomKilled: true }), 'oom');
    assert.equal(outcomeOf({ ...base, exitCode: null, signal: 'SIGKILL', timedOut: true }), 'timeout');
    assert.equal(outcomeOf({ ...base, exitCode: 1 }), 'failure');
  });

  it('gives the exit code a shell would report', () => {
    assert.equal(exitCodeOf({ ...base, exitCode: 3 }), 3);
    assert.equal(exitCodeOf({ ...base, exitCode: null, timedOut: true, signal: 'SIGTERM' }), 124);
    assert.equal(exitCodeOf({ ...base, exitCode: null, signal: 'SIGKILL' }), 137);
    assert.equal(exitCodeOf({ ...base, exitCode: null, error: 'ENOENT' }), 127);
  });
});
