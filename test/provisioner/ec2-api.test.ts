import { strict as assert } from 'node:assert';
import {
  DescribeInstancesCommand,
  EC2Client,
  EC2ServiceException,
  RunInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  type Instance,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import type { Clock } from '../../src/lib';
import {
  candidateToken,
  describePoolMachines,
  launchCandidates,
  launchMachines,
  stopMachines,
  terminateMachines,
  type Ec2PoolConfig,
} from '../../src/provisioner/ec2-api';
import { classifyEc2Error, Ec2Retrier } from '../../src/provisioner/ec2-errors';
import { ProviderError } from '../../src/provisioner/provider';
import { rejection } from '../helpers/rejection';

/** An error shaped the way the SDK's ec2 query protocol throws it: `name` is the AWS code. */
function awsError(code: string, fault: 'client' | 'server' = 'client'): EC2ServiceException {
  return new EC2ServiceException({ name: code, $fault: fault, $metadata: { httpStatusCode: fault === 'client' ? 400 : 503 }, message: `${code} (test)` });
}

function fakeClock(): Clock & { sleeps: number[] } {
  let t = 0;
  const sleeps: number[] = [];
  return { sleeps, now: () => t, sleep: async (ms) => void (sleeps.push(ms), (t += ms)) };
}

function ec2Config(over: Partial<Ec2PoolConfig> = {}): Ec2PoolConfig {
  return {
    region: 'eu-west-1',
    launchTemplate: { name: 'b2g-builder', version: '$Latest' },
    subnetIds: ['subnet-a'],
    instanceTypes: [],
    spot: false,
    spotFallbackToOnDemand: true,
    tags: {},
    ...over,
  };
}

function instance(id: string, over: Partial<Instance> = {}): Instance {
  return { InstanceId: id, State: { Name: 'running', Code: 16 }, PrivateIpAddress: '10.0.0.1', LaunchTime: new Date(1_700_000_000_000), ...over };
}

const signal = new AbortController().signal;

describe('provisioner/ec2-api', () => {
  const client = new EC2Client({ region: 'eu-west-1', maxAttempts: 1 });
  const ec2 = mockClient(client);
  beforeEach(() => ec2.reset());
  after(() => ec2.restore());

  describe('describePoolMachines', () => {
    it('filters by pool tag and live states, follows NextToken over 3 pages, and maps instances', async () => {
      ec2
        .on(DescribeInstancesCommand)
        .resolvesOnce({ Reservations: [{ Instances: [instance('i-0000000000000001', { InstanceLifecycle: 'spot' })] }], NextToken: 't1' })
        .resolvesOnce({
          Reservations: [
            {
              Instances: [
                instance('i-0000000000000002', {
                  State: { Name: 'stopped', Code: 80 },
                  StateReason: { Code: 'Client.UserInitiatedHibernate', Message: 'Client.UserInitiatedHibernate: ...' },
                  PrivateIpAddress: undefined,
                }),
                instance('i-0000000000000003', { State: { Name: 'stopped', Code: 80 }, StateReason: { Code: 'Client.UserInitiatedShutdown' } }),
              ],
            },
          ],
          NextToken: 't2',
        })
        .resolvesOnce({ Reservations: [{ Instances: [instance('i-0000000000000004', { State: { Name: 'pending', Code: 0 }, LaunchTime: undefined })] }] });

      const machines = await describePoolMachines(client, 'ec2-b2g', signal);

      const calls = ec2.commandCalls(DescribeInstancesCommand);
      const filters = [
        { Name: 'tag:spillway:pool', Values: ['ec2-b2g'] },
        { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped', 'shutting-down'] },
      ];
      assert.deepEqual(
        calls.map((c) => c.args[0].input),
        [
          { Filters: filters, MaxResults: 100 },
          { Filters: filters, MaxResults: 100, NextToken: 't1' },
          { Filters: filters, MaxResults: 100, NextToken: 't2' },
        ],
      );
      for (const c of calls) assert.equal((c.args as unknown[])[1] && ((c.args as unknown[])[1] as { abortSignal: unknown }).abortSignal, signal);
      assert.deepEqual(machines, [
        { id: 'i-0000000000000001', state: 'running', privateIp: '10.0.0.1', spot: true, hibernated: false, launchedAt: 1_700_000_000_000 },
        { id: 'i-0000000000000002', state: 'stopped', privateIp: null, spot: false, hibernated: true, launchedAt: 1_700_000_000_000 },
        { id: 'i-0000000000000003', state: 'stopped', privateIp: '10.0.0.1', spot: false, hibernated: false, launchedAt: 1_700_000_000_000 },
        { id: 'i-0000000000000004', state: 'pending', privateIp: '10.0.0.1', spot: false, hibernated: false, launchedAt: null },
      ]);
    });

    it('retries a throttled page with backoff on the injected clock, then succeeds', async () => {
      ec2
        .on(DescribeInstancesCommand)
        .rejectsOnce(awsError('RequestLimitExceeded'))
        .rejectsOnce(awsError('RequestLimitExceeded'))
        .rejectsOnce(awsError('ServiceUnavailable', 'server'))
        .resolvesOnce({ Reservations: [{ Instances: [instance('i-0000000000000001')] }] });
      const clock = fakeClock();
      const retrier = new Ec2Retrier({ clock, random: () => 0 });
      const machines = await describePoolMachines(client, 'p', signal, { retrier });
      assert.equal(machines.length, 1);
      assert.equal(ec2.commandCalls(DescribeInstancesCommand).length, 4);
      // Equal jitter with random() = 0: half of the doubling ceiling 1s, 2s, 4s.
      assert.deepEqual(clock.sleeps, [500, 1000, 2000]);
    });

    it('gives up after the bounded attempts with a retryable ProviderError carrying the AWS code', async () => {
      ec2.on(DescribeInstancesCommand).rejects(awsError('RequestLimitExceeded'));
      const clock = fakeClock();
      const retrier = new Ec2Retrier({ clock, random: () => 0.999, policy: { attempts: 3, baseDelayMs: 100, maxDelayMs: 150 } });
      const err = await rejection(describePoolMachines(client, 'p', signal, { retrier }), ProviderError);
      assert.equal(err.disposition, 'retry');
      assert.equal(err.providerCode, 'RequestLimitExceeded');
      assert.equal(ec2.commandCalls(DescribeInstancesCommand).length, 3);
      assert.deepEqual(clock.sleeps, [99, 149]);
    });

    it('does not retry a fatal error and surfaces it with the AWS code', async () => {
      ec2.on(DescribeInstancesCommand).rejects(awsError('UnauthorizedOperation'));
      const clock = fakeClock();
      const err = await rejection(describePoolMachines(client, 'p', signal, { retrier: new Ec2Retrier({ clock }) }), ProviderError);
      assert.equal(err.disposition, 'fatal');
      assert.equal(err.providerCode, 'UnauthorizedOperation');
      assert.equal(err.code, 'SPILLWAY_E_PROVIDER');
      assert.match(err.message, /DescribeInstances failed \(UnauthorizedOperation/);
      assert.equal(ec2.commandCalls(DescribeInstancesCommand).length, 1);
      assert.deepEqual(clock.sleeps, []);
    });
  });

  /** An entry of StoppingInstances / TerminatingInstances as EC2 answers it. */
  const change = (id: string, previous: string, current: string) => ({ InstanceId: id, PreviousState: { Name: previous }, CurrentState: { Name: current } }) as never;

  describe('stopMachines: what EC2 did to each instance, from its answer', () => {
    it('hibernates with Hibernate: true', async () => {
      ec2.on(StopInstancesCommand).resolves({ StoppingInstances: [change('i-1', 'running', 'stopping'), change('i-2', 'running', 'stopping')] });
      assert.deepEqual(await stopMachines(client, ['i-1', 'i-2'], true, signal), [
        { id: 'i-1', did: 'hibernated', reason: null },
        { id: 'i-2', did: 'hibernated', reason: null },
      ]);
      assert.deepEqual(
        ec2.commandCalls(StopInstancesCommand).map((c) => c.args[0].input),
        [{ InstanceIds: ['i-1', 'i-2'], Hibernate: true }],
      );
    });

    for (const code of ['UnsupportedHibernationConfiguration', 'UnsupportedOperation', 'InvalidParameterCombination']) {
      it(`falls back to a plain stop, recorded as stopped, when EC2 answers ${code} to Hibernate: true`, async () => {
        // The catch-all first: aws-sdk-client-mock lets the last matching definition win.
        ec2
          .on(StopInstancesCommand)
          .resolves({ StoppingInstances: [change('i-1', 'running', 'stopping')] })
          .on(StopInstancesCommand, { Hibernate: true })
          .rejects(awsError(code));
        assert.deepEqual(await stopMachines(client, ['i-1'], true, signal), [{ id: 'i-1', did: 'stopped', reason: `hibernation refused (${code}), stopped instead` }]);
        assert.deepEqual(
          ec2.commandCalls(StopInstancesCommand).map((c) => c.args[0].input),
          [{ InstanceIds: ['i-1'], Hibernate: true }, { InstanceIds: ['i-1'] }],
        );
      });
    }

    it('an instance EC2 does not list was not acted on, one already stopped was not hibernated, one gone is terminated [BUG: all recorded as asked]', async () => {
      ec2.on(StopInstancesCommand).resolves({ StoppingInstances: [change('i-stopped', 'stopped', 'stopped'), change('i-gone', 'running', 'shutting-down')] });
      assert.deepEqual(await stopMachines(client, ['i-missing', 'i-stopped', 'i-gone'], true, signal), [
        { id: 'i-missing', did: 'failed', reason: 'StopInstances reported no state change for i-missing' },
        { id: 'i-stopped', did: 'stopped', reason: 'already stopped (not hibernated by this call)' },
        { id: 'i-gone', did: 'terminated', reason: 'EC2 reports shutting-down after StopInstances' },
      ]);
    });

    it('plain stop for stop pools; IncorrectInstanceState is retry-later, without a fallback', async () => {
      ec2.on(StopInstancesCommand).rejects(awsError('IncorrectInstanceState'));
      const err = await rejection(stopMachines(client, ['i-1'], false, signal), ProviderError);
      assert.equal(err.disposition, 'retry');
      assert.equal(err.providerCode, 'IncorrectInstanceState');
      assert.deepEqual(ec2.commandCalls(StopInstancesCommand).map((c) => c.args[0].input), [{ InstanceIds: ['i-1'] }]);
    });

    it('a throttled hibernating stop is not taken for a refusal of hibernation', async () => {
      ec2.on(StopInstancesCommand).rejects(awsError('RequestLimitExceeded'));
      const err = await rejection(stopMachines(client, ['i-1'], true, signal), ProviderError);
      assert.equal(err.providerCode, 'RequestLimitExceeded');
      assert.deepEqual(ec2.commandCalls(StopInstancesCommand).map((c) => c.args[0].input), [{ InstanceIds: ['i-1'], Hibernate: true }]);
    });
  });

  it('terminateMachines treats unknown instances as already gone, and reads the rest from the answer', async () => {
    ec2
      .on(TerminateInstancesCommand, { InstanceIds: ['i-1', 'i-2'] })
      .rejects(awsError('InvalidInstanceID.NotFound'))
      .on(TerminateInstancesCommand, { InstanceIds: ['i-1'] })
      .rejects(awsError('InvalidInstanceID.NotFound'))
      .on(TerminateInstancesCommand, { InstanceIds: ['i-2'] })
      .resolves({ TerminatingInstances: [change('i-2', 'running', 'shutting-down')] });
    assert.deepEqual(await terminateMachines(client, ['i-1', 'i-2'], signal), [
      { id: 'i-1', did: 'terminated', reason: 'EC2 no longer knows it' },
      { id: 'i-2', did: 'terminated', reason: null },
    ]);
    assert.deepEqual(
      ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input.InstanceIds),
      [['i-1', 'i-2'], ['i-1'], ['i-2']],
    );
  });

  describe('launchMachines', () => {
    const launched = { Instances: [instance('i-00000000000000aa', { State: { Name: 'pending', Code: 0 } })] };

    it('runs the launch template with count, subnet, type, tags on instance and volume, and the ClientToken', async () => {
      ec2.on(RunInstancesCommand).resolves(launched);
      const config = ec2Config({ launchTemplate: { id: 'lt-0123', version: '7' }, instanceTypes: ['c6i.4xlarge'], tags: { team: 'releng', Name: 'b2g' } });
      const out = await launchMachines(client, { pool: 'ec2-b2g', config, count: 2, clientToken: 'tok-1' }, signal);
      const tags = [
        { Key: 'spillway:pool', Value: 'ec2-b2g' },
        { Key: 'Name', Value: 'b2g' },
        { Key: 'team', Value: 'releng' },
      ];
      assert.deepEqual(ec2.commandCalls(RunInstancesCommand)[0]?.args[0].input, {
        LaunchTemplate: { LaunchTemplateId: 'lt-0123', Version: '7' },
        MinCount: 1,
        MaxCount: 2,
        SubnetId: 'subnet-a',
        InstanceType: 'c6i.4xlarge',
        TagSpecifications: [
          { ResourceType: 'instance', Tags: tags },
          { ResourceType: 'volume', Tags: tags },
        ],
        ClientToken: 'tok-1',
      });
      assert.deepEqual(out.machines.map((m) => m.id), ['i-00000000000000aa']);
      assert.deepEqual(out.placements.map((p) => p.candidate), [{ market: 'on-demand', instanceType: 'c6i.4xlarge', subnetId: 'subnet-a' }]);
    });

    it('asks for one-time spot, then moves to the next subnet and type on InsufficientInstanceCapacity', async () => {
      const config = ec2Config({ spot: true, subnetIds: ['subnet-a', 'subnet-b'], instanceTypes: ['c6i.4xlarge', 'c5.4xlarge'] });
      const token = 'tok-2';
      const order = launchCandidates(config, token);
      assert.equal(order.length, 8, '2 markets x 2 types x 2 subnets');
      ec2.on(RunInstancesCommand).rejectsOnce(awsError('InsufficientInstanceCapacity', 'server')).rejectsOnce(awsError('InsufficientInstanceCapacity', 'server')).resolves(launched);

      const out = await launchMachines(client, { pool: 'p', config, count: 1, clientToken: token }, signal);

      const inputs = ec2.commandCalls(RunInstancesCommand).map((c) => c.args[0].input);
      assert.equal(inputs.length, 3);
      assert.deepEqual(
        inputs.map((i) => [i.InstanceType, i.SubnetId, i.ClientToken]),
        [
          ['c6i.4xlarge', order[0]?.subnetId, 'tok-2'],
          ['c6i.4xlarge', order[1]?.subnetId, 'tok-2-1'],
          ['c5.4xlarge', order[0]?.subnetId, 'tok-2-2'],
        ],
      );
      assert.notEqual(order[0]?.subnetId, order[1]?.subnetId);
      for (const i of inputs) {
        assert.deepEqual(i.InstanceMarketOptions, { MarketType: 'spot', SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' } });
      }
      assert.equal(out.refusals.length, 2);
      assert.deepEqual(out.placements.map((p) => p.candidate.market), ['spot']);
    });

    it('falls back from spot to on-demand when spot is refused', async () => {
      const config = ec2Config({ spot: true, subnetIds: ['subnet-a', 'subnet-b'], launchTemplate: { name: 'b2g', version: '$Default' } });
      ec2.on(RunInstancesCommand).rejectsOnce(awsError('SpotMaxPriceTooLow')).resolves(launched);
      const out = await launchMachines(client, { pool: 'p', config, count: 1, clientToken: 'tok-3' }, signal);
      const inputs = ec2.commandCalls(RunInstancesCommand).map((c) => c.args[0].input);
      // A spot-only refusal skips the remaining spot subnets and goes straight to on-demand.
      assert.equal(inputs.length, 2);
      assert.ok(inputs[0]?.InstanceMarketOptions);
      assert.equal(inputs[1]?.InstanceMarketOptions, undefined);
      assert.deepEqual(inputs[1]?.LaunchTemplate, { LaunchTemplateName: 'b2g', Version: '$Default' });
      assert.equal(inputs[1]?.ClientToken, candidateToken('tok-3', 2));
      assert.deepEqual(out.placements.map((p) => p.candidate.market), ['on-demand']);
    });

    it('without the on-demand fallback, a spot refusal is a retryable ProviderError', async () => {
      const config = ec2Config({ spot: true, spotFallbackToOnDemand: false });
      ec2.on(RunInstancesCommand).rejects(awsError('InsufficientInstanceCapacity', 'server'));
      const err = await rejection(launchMachines(client, { pool: 'p', config, count: 1, clientToken: 't' }, signal), ProviderError);
      assert.equal(err.disposition, 'retry');
      assert.equal(err.providerCode, 'InsufficientInstanceCapacity');
      assert.equal(ec2.commandCalls(RunInstancesCommand).length, 1);
    });

    it('stops at the first non-capacity error', async () => {
      ec2.on(RunInstancesCommand).rejects(awsError('InvalidParameterValue'));
      const config = ec2Config({ subnetIds: ['subnet-a', 'subnet-b'] });
      const err = await rejection(launchMachines(client, { pool: 'p', config, count: 1, clientToken: 't' }, signal), ProviderError);
      assert.equal(err.disposition, 'fatal');
      assert.equal(err.providerCode, 'InvalidParameterValue');
      assert.equal(ec2.commandCalls(RunInstancesCommand).length, 1);
    });
  });

  it('candidate order and tokens are stable for a retried launch', () => {
    const config = ec2Config({ subnetIds: ['s1', 's2', 's3'] });
    assert.deepEqual(launchCandidates(config, 'same'), launchCandidates(config, 'same'));
    assert.equal(candidateToken('x'.repeat(64), 3), `${'x'.repeat(62)}-3`);
  });

  it('classifies EC2 error codes once', () => {
    const table: [unknown, string, string][] = [
      [awsError('RequestLimitExceeded'), 'throttled', 'retry'],
      [awsError('ThrottlingException'), 'throttled', 'retry'],
      [awsError('InternalError', 'server'), 'transient', 'retry'],
      [awsError('SomethingNew', 'server'), 'transient', 'retry'],
      [Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), 'transient', 'retry'],
      [awsError('InsufficientInstanceCapacity', 'server'), 'capacity', 'retry'],
      [awsError('MaxSpotInstanceCountExceeded'), 'spot-capacity', 'retry'],
      [awsError('VcpuLimitExceeded'), 'quota', 'retry'],
      [awsError('IncorrectInstanceState'), 'state', 'retry'],
      [awsError('InvalidInstanceID.NotFound'), 'not-found', 'fatal'],
      [awsError('UnsupportedHibernationConfiguration'), 'hibernation-unsupported', 'fatal'],
      [awsError('UnauthorizedOperation'), 'fatal', 'fatal'],
      [awsError('AuthFailure'), 'fatal', 'fatal'],
      [awsError('InvalidLaunchTemplateId.NotFound'), 'fatal', 'fatal'],
      [awsError('SomethingNew'), 'fatal', 'fatal'],
    ];
    for (const [err, kind, disposition] of table) {
      const c = classifyEc2Error(err);
      assert.deepEqual([c.kind, c.disposition], [kind, disposition], String(err));
    }
    const aborted = new AbortController();
    aborted.abort();
    assert.equal(classifyEc2Error(new Error('x'), aborted.signal).kind, 'aborted');
  });
});
