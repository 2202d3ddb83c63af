import { strict as assert } from 'node:assert';
import {
  DescribeInstancesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeSubnetsCommand,
  EC2Client,
  EC2ServiceException,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { createLogger, type Clock, type LogEntry } from '../../src/lib';
import type { Ec2PoolConfig } from '../../src/provisioner/ec2-api';
import { Ec2Provider } from '../../src/provisioner/ec2-provider';
import { ProviderError } from '../../src/provisioner/provider';
import { rejection } from '../helpers/rejection';

function awsError(code: string, fault: 'client' | 'server' = 'client'): EC2ServiceException {
  return new EC2ServiceException({ name: code, $fault: fault, $metadata: {}, message: `${code} (test)` });
}

const signal = new AbortController().signal;

describe('provisioner/ec2-provider', () => {
  const client = new EC2Client({ region: 'eu-west-1', maxAttempts: 1 });
  const ec2 = mockClient(client);
  let entries: LogEntry[];
  let sleeps: number[];

  const config = (over: Partial<Ec2PoolConfig> = {}): Ec2PoolConfig => ({
    region: 'eu-west-1',
    launchTemplate: { name: 'b2g-builder', version: '$Latest' },
    subnetIds: ['subnet-a', 'subnet-b'],
    instanceTypes: [],
    spot: false,
    spotFallbackToOnDemand: true,
    tags: {},
    ...over,
  });

  function provider(over: Partial<Ec2PoolConfig> = {}): Ec2Provider {
    const clock: Clock = { now: () => 0, sleep: async (ms) => void sleeps.push(ms) };
    const log = createLogger({ silent: true, level: 'debug', sink: (e) => entries.push(e) });
    return new Ec2Provider({ pool: 'ec2-b2g', config: config(over), client, clock, log, random: () => 0 });
  }

  beforeEach(() => {
    ec2.reset();
    entries = [];
    sleeps = [];
  });
  after(() => ec2.restore());

  describe('setup', () => {
    it('checks the launch template and the subnets', async () => {
      ec2.on(DescribeLaunchTemplatesCommand).resolves({ LaunchTemplates: [{ LaunchTemplateId: 'lt-1', LaunchTemplateName: 'b2g-builder' }] });
      ec2.on(DescribeSubnetsCommand).resolves({ Subnets: [{ SubnetId: 'subnet-a' }, { SubnetId: 'subnet-b' }] });
      await provider().setup(signal);
      assert.deepEqual(ec2.commandCalls(DescribeLaunchTemplatesCommand)[0]?.args[0].input, { LaunchTemplateNames: ['b2g-builder'] });
      assert.deepEqual(ec2.commandCalls(DescribeSubnetsCommand)[0]?.args[0].input, {
        Filters: [{ Name: 'subnet-id', Values: ['subnet-a', 'subnet-b'] }],
      });
    });

    it('fails fatally, with the AWS code, when the launch template does not exist', async () => {
      ec2.on(DescribeLaunchTemplatesCommand).rejects(awsError('InvalidLaunchTemplateName.NotFoundException'));
      const err = await rejection(provider().setup(signal), ProviderError);
      assert.equal(err.disposition, 'fatal');
      assert.equal(err.providerCode, 'InvalidLaunchTemplateName.NotFoundException');
      assert.match(err.message, /pool "ec2-b2g" \(EC2 eu-west-1\): launch template name "b2g-builder" does not exist/);
      assert.equal(ec2.commandCalls(DescribeLaunchTemplatesCommand).length, 1, 'not retried');
      assert.equal(ec2.commandCalls(DescribeSubnetsCommand).length, 0);
    });

    it('fails fatally naming the subnets that do not exist', async () => {
      ec2.on(DescribeLaunchTemplatesCommand).resolves({ LaunchTemplates: [{ LaunchTemplateId: 'lt-1' }] });
      ec2.on(DescribeSubnetsCommand).resolves({ Subnets: [{ SubnetId: 'subnet-a' }] });
      const err = await rejection(provider({ launchTemplate: { id: 'lt-1', version: '3' } }).setup(signal), ProviderError);
      assert.equal(err.disposition, 'fatal');
      assert.match(err.message, /subnets do not exist: subnet-b/);
      assert.deepEqual(ec2.commandCalls(DescribeLaunchTemplatesCommand)[0]?.args[0].input, { LaunchTemplateIds: ['lt-1'] });
    });

    it('a throttled setup is retried on the clock and, when it persists, is retryable', async () => {
      ec2.on(DescribeLaunchTemplatesCommand).rejects(awsError('RequestLimitExceeded'));
      const err = await rejection(provider().setup(signal), ProviderError);
      assert.equal(err.disposition, 'retry');
      assert.equal(err.providerCode, 'RequestLimitExceeded');
      assert.deepEqual(sleeps, [500, 1000, 2000, 4000]);
      assert.deepEqual(
        entries.filter((e) => e.event === 'ec2.throttled').map((e) => e.attempt),
        [1, 2, 3, 4],
      );
    });
  });

  it('list() finds the pool by its tag', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: 'i-1', State: { Name: 'stopped' } }] }] });
    const machines = await provider().list(signal);
    assert.deepEqual(machines.map((m) => [m.id, m.state]), [['i-1', 'stopped']]);
    assert.deepEqual(ec2.commandCalls(DescribeInstancesCommand)[0]?.args[0].input.Filters?.[0], { Name: 'tag:spillway:pool', Values: ['ec2-b2g'] });
  });

  it('start() wakes with StartInstances; IncorrectInstanceState is retry-later', async () => {
    ec2.on(StartInstancesCommand).resolvesOnce({}).rejectsOnce(awsError('IncorrectInstanceState'));
    const p = provider();
    await p.start(['i-1', 'i-2'], signal);
    const err = await rejection(p.start(['i-3'], signal), ProviderError);
    assert.equal(err.disposition, 'retry');
    assert.deepEqual(ec2.commandCalls(StartInstancesCommand).map((c) => c.args[0].input), [{ InstanceIds: ['i-1', 'i-2'] }, { InstanceIds: ['i-3'] }]);
  });

  describe('suspend: outcomes read from EC2\'s answer, not the mode asked', () => {
    const change = (id: string, previous: string, current: string) => ({ InstanceId: id, PreviousState: { Name: previous }, CurrentState: { Name: current } }) as never;

    it('hibernates, and falls back to a plain stop when EC2 refuses hibernation: the outcome says stopped [BUG: recorded as hibernated]', async () => {
      ec2
        .on(StopInstancesCommand)
        .resolves({ StoppingInstances: [change('i-1', 'running', 'stopping')] })
        .on(StopInstancesCommand, { Hibernate: true })
        .rejects(awsError('UnsupportedHibernationConfiguration'));
      const out = await provider().suspend(['i-1'], 'hibernate', signal);
      assert.deepEqual(out, [{ id: 'i-1', did: 'stopped', reason: 'hibernation refused (UnsupportedHibernationConfiguration), stopped instead' }]);
      assert.deepEqual(
        ec2.commandCalls(StopInstancesCommand).map((c) => c.args[0].input),
        [{ InstanceIds: ['i-1'], Hibernate: true }, { InstanceIds: ['i-1'] }],
      );
      assert.ok(entries.some((e) => e.event === 'ec2.hibernate-refused' && e.code === 'UnsupportedHibernationConfiguration'));
      assert.ok(entries.some((e) => e.event === 'ec2.suspended' && (e.outcomes as string[])[0] === 'i-1: stopped'));
    });

    it('stop mode never asks for hibernation; terminate mode terminates', async () => {
      ec2.on(StopInstancesCommand).resolves({ StoppingInstances: [change('i-1', 'running', 'stopping')] });
      ec2.on(TerminateInstancesCommand).resolves({ TerminatingInstances: [change('i-2', 'running', 'shutting-down')] });
      assert.deepEqual(await provider().suspend(['i-1'], 'stop', signal), [{ id: 'i-1', did: 'stopped', reason: null }]);
      assert.deepEqual(await provider().suspend(['i-2'], 'terminate', signal), [{ id: 'i-2', did: 'terminated', reason: null }]);
      assert.deepEqual(ec2.commandCalls(StopInstancesCommand).map((c) => c.args[0].input), [{ InstanceIds: ['i-1'] }]);
      assert.deepEqual(ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input), [{ InstanceIds: ['i-2'] }]);
    });

    it('in a spot pool, terminates the spot instances (one-time spot cannot stop) and hibernates the rest: each outcome says which [BUG: both "suspended"]', async () => {
      ec2.on(DescribeInstancesCommand).resolves({
        Reservations: [
          {
            Instances: [
              { InstanceId: 'i-spot', State: { Name: 'running' }, InstanceLifecycle: 'spot' },
              { InstanceId: 'i-od', State: { Name: 'running' } },
            ],
          },
        ],
      });
      ec2.on(TerminateInstancesCommand).resolves({ TerminatingInstances: [change('i-spot', 'running', 'shutting-down')] });
      ec2.on(StopInstancesCommand).resolves({ StoppingInstances: [change('i-od', 'running', 'stopping')] });
      const out = await provider({ spot: true }).suspend(['i-spot', 'i-od'], 'hibernate', signal);
      assert.deepEqual(out, [
        { id: 'i-spot', did: 'terminated', reason: 'terminated: one-time spot instances cannot be stopped' },
        { id: 'i-od', did: 'hibernated', reason: null },
      ]);
      assert.deepEqual(ec2.commandCalls(DescribeInstancesCommand)[0]?.args[0].input, {
        Filters: [{ Name: 'instance-id', Values: ['i-spot', 'i-od'] }],
        MaxResults: 100,
      });
      assert.deepEqual(ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input), [{ InstanceIds: ['i-spot'] }]);
      assert.deepEqual(ec2.commandCalls(StopInstancesCommand).map((c) => c.args[0].input), [{ InstanceIds: ['i-od'], Hibernate: true }]);
    });
  });

  it('launch() falls back from spot to on-demand and logs where it landed', async () => {
    ec2
      .on(RunInstancesCommand)
      .rejectsOnce(awsError('MaxSpotInstanceCountExceeded'))
      .resolves({ Instances: [{ InstanceId: 'i-new', State: { Name: 'pending' }, PrivateIpAddress: '10.1.2.3' }] });
    const machines = await provider({ spot: true }).launch({ count: 1, clientToken: 'launch-42' }, signal);
    assert.deepEqual(machines, [{ id: 'i-new', state: 'pending', privateIp: '10.1.2.3', spot: false, hibernated: false, launchedAt: null }]);
    const inputs = ec2.commandCalls(RunInstancesCommand).map((c) => c.args[0].input);
    assert.equal(inputs.length, 2);
    assert.equal(inputs[0]?.InstanceMarketOptions?.MarketType, 'spot');
    assert.equal(inputs[0]?.ClientToken, 'launch-42');
    assert.equal(inputs[1]?.InstanceMarketOptions, undefined);
    assert.notEqual(inputs[1]?.ClientToken, 'launch-42', 'a different request needs its own token');
    const launched = entries.find((e) => e.event === 'ec2.launched');
    assert.match(String(launched?.placements), /^1\/1 on-demand template type in subnet-[ab]$/);
    assert.equal(launched?.pool, 'ec2-b2g');
  });

  it('launch() surfaces a fatal error with its AWS code, unretried', async () => {
    ec2.on(RunInstancesCommand).rejects(awsError('UnauthorizedOperation'));
    const err = await rejection(provider().launch({ count: 1, clientToken: 't' }, signal), ProviderError);
    assert.equal(err.disposition, 'fatal');
    assert.equal(err.providerCode, 'UnauthorizedOperation');
    assert.equal(ec2.commandCalls(RunInstancesCommand).length, 1);
    assert.deepEqual(sleeps, []);
  });

  it('the constructor makes no calls and never fails', () => {
    const p = provider({ subnetIds: [], launchTemplate: { version: '$Latest' } });
    assert.equal(p.kind, 'ec2');
    assert.equal(ec2.calls().length, 0);
  });
});
