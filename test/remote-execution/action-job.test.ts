import { strict as assert } from 'node:assert';
import { parseConfig } from '../../src/config';
import { actionJob, jobTypeOf, requirementsOf } from '../../src/remote-execution/action-job';
import type { Action__Output, Command__Output } from '../../src/remote-execution';

const H = 'a'.repeat(64);
const config = parseConfig(
  {
    agents: { token: 'test-token-0123456789' },
    jobTypes: { remote: {}, big: {} },
    remoteExecution: { defaultJobType: 'remote', instances: { 'linux-large': 'big' } },
  },
  {},
);

function action(over: Partial<Action__Output> = {}): Action__Output {
  return { commandDigest: { hash: H, sizeBytes: 3 }, inputRootDigest: { hash: H, sizeBytes: 0 }, timeout: null, doNotCache: false, salt: Buffer.alloc(0), platform: null, ...over };
}
function command(over: Partial<Command__Output> = {}): Command__Output {
  return {
    arguments: ['/bin/echo', 'hi'],
    environmentVariables: [{ name: 'PATH', value: '/bin' }],
    outputFiles: ['out/a.txt'],
    outputDirectories: ['gen'],
    platform: null,
    workingDirectory: '',
    outputPaths: [],
    outputNodeProperties: [],
    outputDirectoryFormat: 'TREE_ONLY',
    ...over,
  } as Command__Output;
}
const platform = (props: Record<string, string>) => ({ properties: Object.entries(props).map(([name, value]) => ({ name, value })) });

describe('remote-execution/action-job', () => {
  it('maps instance names to job types, with the default for the rest', () => {
    assert.equal(jobTypeOf(config, 'linux-large'), 'big');
    assert.equal(jobTypeOf(config, ''), 'remote');
    assert.equal(jobTypeOf(config, 'other'), 'remote');
    const none = parseConfig({ agents: { token: 'test-token-0123456789' }, jobTypes: { remote: {} } }, {});
    const job = actionJob(none, '', { hash: H, sizeBytes: 1 }, action(), command());
    assert.equal(job.ok, false);
    assert.match(JSON.stringify(job), /maps to no job type/);
  });

  it('refuses a remoteExecution section naming an unknown job type', () => {
    assert.throws(
      () => parseConfig({ agents: { token: 'test-token-0123456789' }, jobTypes: { a: {} }, remoteExecution: { defaultJobType: 'nope', instances: { x: 'gone' } } }, {}),
      (err: Error) => /remoteExecution\.defaultJobType: unknown job type "nope"/.test(err.message) && /remoteExecution\.instances\.x: unknown job type "gone"/.test(err.message),
    );
  });

  it('turns Action and Command into a remoteAction job payload', () => {
    const job = actionJob(config, 'linux-large', { hash: H, sizeBytes: 9 }, action({ timeout: { seconds: 4, nanos: 500_000_000 }, doNotCache: true }), command({ workingDirectory: 'pkg' }));
    assert.ok(job.ok, JSON.stringify(job));
    assert.equal(job.type, 'big');
    assert.equal(job.doNotCache, true);
    assert.deepEqual(job.payload.argv, ['/bin/echo', 'hi']);
    assert.deepEqual(job.payload.env, { PATH: '/bin' });
    assert.equal(job.payload.cwd, 'pkg');
    assert.equal(job.payload.timeoutSec, 5);
    assert.deepEqual(job.payload.remoteAction, {
      actionDigest: { hash: H, size: 9 },
      inputRoot: { hash: H, size: 0 },
      outputFiles: ['out/a.txt'],
      outputDirs: ['gen'],
      outputPaths: [],
    });
  });

  it('uses output_paths alone when they are set (REAPI v2.1)', () => {
    const job = actionJob(config, '', { hash: H, sizeBytes: 1 }, action(), command({ outputPaths: ['x', 'y/z'] }));
    assert.ok(job.ok);
    assert.deepEqual(job.payload.remoteAction!.outputFiles, []);
    assert.deepEqual(job.payload.remoteAction!.outputDirs, []);
    assert.deepEqual(job.payload.remoteAction!.outputPaths, ['x', 'y/z']);
  });

  it('maps platform properties to requirements (the Action platform first)', () => {
    const { requirements, violations } = requirementsOf(platform({ OSFamily: 'Linux', ISA: 'x86-64', cpus: '4', memoryMb: '2048', labels: 'gpu, ssd', label: 'gpu', pool: 'ec2-b2g' }), 'action.platform');
    assert.deepEqual(violations, []);
    assert.deepEqual(requirements, { os: 'linux', arch: 'x64', cpus: 4, memoryMb: 2048, labels: ['gpu', 'ssd'], pool: 'ec2-b2g' });
    const job = actionJob(config, '', { hash: H, sizeBytes: 1 }, action({ platform: platform({ OSFamily: 'linux' }) }), command({ platform: platform({ OSFamily: 'windows' }) }));
    assert.ok(job.ok);
    assert.deepEqual(job.payload.requirements, { os: 'linux' });
  });

  it('names every bad property, env variable and output path as a violation (hostile requests)', () => {
    const bad = requirementsOf(platform({ OSFamily: 'plan9', ISA: 'vax', cpus: '-1', memoryMb: '1e9', 'container-image': 'x', pool: ' ' }), 'command.platform');
    assert.equal(bad.violations.length, 6, JSON.stringify(bad.violations));
    assert.match(bad.violations.map((v) => v.description).join('\n'), /unknown OSFamily "plan9"[\s\S]*unknown ISA[\s\S]*cpus must be[\s\S]*memoryMb must be[\s\S]*unsupported platform property "container-image"[\s\S]*pool must not be empty/);
    for (const [cmd, pattern] of [
      [command({ arguments: [] }), /at least the program/],
      [command({ environmentVariables: [{ name: 'A=B', value: '1' }] }), /contains \\"=\\"/],
      [command({ environmentVariables: [{ name: 'A', value: '1' }, { name: 'A', value: '2' }] }), /set twice/],
      [command({ outputFiles: ['../escape'] }), /must be a plain relative path/],
      [command({ outputDirectories: ['/abs'] }), /must be a plain relative path/],
      [command({ workingDirectory: '../up' }), /must stay inside the work directory/],
    ] as const) {
      const job = actionJob(config, '', { hash: H, sizeBytes: 1 }, action(), cmd);
      assert.equal(job.ok, false);
      assert.match(JSON.stringify(job), pattern);
    }
    assert.equal(actionJob(config, '', { hash: H, sizeBytes: 1 }, action({ inputRootDigest: null }), command()).ok, false);
  });
});
