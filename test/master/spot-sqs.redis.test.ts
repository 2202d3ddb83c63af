import assert from 'node:assert/strict';
import {
  DescribeInstancesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeSubnetsCommand,
  EC2Client,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import type { JobView } from '../../src/master';
import { interruptionWarning } from '../fakes/ec2-events';
import { FakeImds } from '../slave-agent/fake-imds';
import { farmConfigRaw, TestFarm } from '../helpers/farm';

const SPOT_ID = 'i-0123456789abcdef0';
const QUEUE = 'https://sqs.eu-west-1.amazonaws.com/123456789012/spillway-ec2-events';

/**
 * The SQS path through a real master: an EC2 pool (its client handed to the composition root,
 * mocked on that instance) with one running spot instance whose agent is connected, and the
 * EventBridge queue delivering that instance's interruption warning.
 */
describe('spot notices from SQS, end to end through a real master', function () {
  this.timeout(30_000);
  const ec2Client = new EC2Client({ region: 'eu-west-1', maxAttempts: 1 });
  const ec2 = mockClient(ec2Client);
  const sqsClient = new SQSClient({ region: 'eu-west-1', maxAttempts: 1 });
  const sqs = mockClient(sqsClient);
  let farm: TestFarm | undefined;
  let imds: FakeImds;
  /** Long polls in flight; answered (empty) when the test ends, as SQS would after 20 s. */
  const polls: Array<() => void> = [];

  beforeEach(async () => {
    ec2.reset();
    sqs.reset();
    ec2.on(DescribeLaunchTemplatesCommand).resolves({ LaunchTemplates: [{ LaunchTemplateId: 'lt-1', LaunchTemplateName: 'builder' }] });
    ec2.on(DescribeSubnetsCommand).resolves({ Subnets: [{ SubnetId: 'subnet-a' }] });
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        {
          Instances: [
            {
              InstanceId: SPOT_ID,
              State: { Name: 'running', Code: 16 },
              PrivateIpAddress: '10.77.0.2',
              InstanceLifecycle: 'spot',
              Tags: [{ Key: 'spillway:pool', Value: 'spot' }],
            },
          ],
        },
      ],
    });
    ec2.on(TerminateInstancesCommand).resolves({ TerminatingInstances: [{ InstanceId: SPOT_ID, CurrentState: { Name: 'shutting-down', Code: 32 } }] });
    imds = await new FakeImds().start(SPOT_ID);
  });
  afterEach(async () => {
    for (const release of polls.splice(0)) release();
    await farm?.stop();
    await imds.stop();
  });
  after(() => ec2.restore());

  it('drains the instance\'s agent at once, lets its build finish, deletes the message, retires the instance', async () => {
    let deliver!: () => void;
    const noticeDue = new Promise<void>((r) => (deliver = r));
    let delivered = false;
    sqs.on(ReceiveMessageCommand).callsFake(async () => {
      if (!delivered) {
        await noticeDue;
        delivered = true;
        return { Messages: [{ MessageId: 'm-1', ReceiptHandle: 'rh-1', Body: interruptionWarning(SPOT_ID), Attributes: { ApproximateReceiveCount: '1' } }] };
      }
      await new Promise<void>((r) => polls.push(r));
      return {};
    });
    sqs.on(DeleteMessageBatchCommand).resolves({ Successful: [{ Id: '0' }], Failed: [] });

    farm = await new TestFarm(
      farmConfigRaw({
        jobTypes: { b2g: { attempts: 2, overflow: { pool: 'spot', minBacklog: 50 } }, linux64: { attempts: 2 } },
        pools: {
          spot: {
            provider: 'ec2',
            maxInstances: 2,
            ec2: { region: 'eu-west-1', launchTemplate: { name: 'builder' }, subnetIds: ['subnet-a'], spot: true },
          },
        },
        spotNotices: { queueUrl: QUEUE },
      }),
      { ec2Client: () => ec2Client, sqsClient: () => sqsClient },
    ).start();
    await farm.agent({ name: 'spot-1', jobTypes: ['b2g'], location: 'cloud', instanceId: SPOT_ID, imdsUrl: imds.url });
    const events = await farm.events('b2g');

    const running = await farm.submit({ type: 'b2g', shell: 'sleep 1; echo finished in the window' });
    await farm.logs.waitFor((e) => e.event === 'job.started' && e.jobId === running);
    deliver();

    const notice = await farm.logs.waitFor((e) => e.event === 'agent.notice' && e.agent === 'spot-1');
    assert.equal(notice.notice, 'spot-interruption');
    const { agents } = await farm.api<{ agents: Array<{ name: string; draining: boolean }> }>('/api/agents');
    assert.equal(agents.find((a) => a.name === 'spot-1')?.draining, true);
    const later = await farm.submit({ type: 'b2g', argv: ['echo', 'not on the spot agent'] });

    await (await farm.queue('b2g').getJob(running))!.waitUntilFinished(events);
    const first = await farm.api<JobView>(`/api/jobs/${running}`);
    assert.deepEqual([first.state, first.agent], ['completed', 'spot-1']);
    assert.equal((await farm.api<JobView>(`/api/jobs/${later}`)).state, 'waiting', 'nothing may go to the interrupted instance');

    // The message was handled, so it is deleted; the retiring instance is terminated once idle.
    assert.deepEqual(sqs.commandCalls(DeleteMessageBatchCommand)[0]?.args[0].input.Entries, [{ Id: '0', ReceiptHandle: 'rh-1' }]);
    await farm.logs.waitFor((e) => e.event === 'instance.retired' && e.instanceId === SPOT_ID);
    assert.deepEqual(ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input.InstanceIds), [[SPOT_ID]]);
    const suspended = await farm.logs.waitFor((e) => e.event === 'instance.suspended' && e.instanceId === SPOT_ID);
    assert.equal(suspended.did, 'terminated');
    const pools = await farm.api<{ pools: Array<{ instances: Array<{ id: string; state: string; reason: string | null }> }> }>('/api/pools');
    assert.equal(pools.pools[0]!.instances.find((i) => i.id === SPOT_ID), undefined, 'a terminated instance is forgotten');
  });
});
