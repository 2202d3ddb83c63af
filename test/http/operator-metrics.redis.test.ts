import { strict as assert } from 'node:assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { ReceiveMessageCommand, SQSClient, SQSServiceException } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { FakeEc2 } from '../fakes/fake-ec2';
import { farmConfigRaw, TestFarm } from '../helpers/farm';
import { helloFrameFor } from '../helpers/hello-frame';
import { RawAgent } from '../helpers/raw-agent';
import { parsePrometheus } from '../helpers/prometheus';
import { waitUntil } from '../helpers/wait-until';

const QUEUE = 'https://sqs.eu-west-1.amazonaws.com/123456789012/spillway-ec2-events';

async function scrape(farm: TestFarm): Promise<Map<string, number>> {
  const res = await fetch(`${farm.addr.httpUrl}/metrics`, { headers: farm.auth('read') });
  assert.equal(res.status, 200);
  return parsePrometheus(await res.text());
}

describe('metrics for operators: build durations and agents by location', () => {
  let farm: TestFarm;
  before(async () => {
    farm = await new TestFarm(farmConfigRaw()).start();
    await farm.agent({ name: 'rack-1', jobTypes: ['b2g'], location: 'onprem' });
    await farm.agent({ name: 'ec2-1', jobTypes: ['linux64'], location: 'cloud' });
  });
  after(() => farm.stop());

  it('counts connected agents by location and builds into a duration histogram by type and location', async () => {
    let m = await scrape(farm);
    assert.equal(m.get('spillway_agents_connected{location="onprem"}'), 1);
    assert.equal(m.get('spillway_agents_connected{location="cloud"}'), 1);
    const a = await farm.submit({ type: 'b2g', shell: 'sleep 0.3' });
    const b = await farm.submit({ type: 'linux64', argv: ['true'] });
    const [ra, rb] = [await farm.finished(a), await farm.finished(b)];
    m = await scrape(farm);
    assert.equal(m.get('spillway_build_duration_seconds_count{type="b2g",location="onprem"}'), 1);
    assert.equal(m.get('spillway_build_duration_seconds_count{type="linux64",location="cloud"}'), 1);
    const sum = m.get('spillway_build_duration_seconds_sum{type="b2g",location="onprem"}')!;
    assert.ok(Math.abs(sum - ra.durationMs! / 1000) < 1e-9, `sum ${sum} = the build record's duration ${ra.durationMs} ms`);
    assert.ok(sum >= 0.3);
    assert.equal(m.get('spillway_build_duration_seconds_bucket{le="1",type="b2g",location="onprem"}'), 1);
    assert.ok(rb.durationMs !== null);
  });

  it('counts agents lost (silent past lostAfterSec) by location', async () => {
    assert.equal((await scrape(farm)).get('spillway_agents_lost_total{location="cloud"}'), 0, 'present before any loss, so rate() works');
    const silent = await RawAgent.connect(farm.addr.agentUrl, helloFrameFor({ name: 'silent-1', location: 'cloud', jobTypes: ['linux64'] }));
    assert.ok(silent.welcomed);
    await farm.logs.waitFor((e) => e.event === 'agent.lost' && e.agent === 'silent-1');
    const m = await scrape(farm);
    assert.equal(m.get('spillway_agents_lost_total{location="cloud"}'), 1);
    assert.equal(m.get('spillway_agents_lost_total{location="onprem"}'), 0);
    silent.ws.close();
  });
});

describe('metrics for operators: AWS API errors by code, instance-hours and cost (EC2 and SQS faked under the SDK)', function () {
  this.timeout(30_000);
  let farm: TestFarm;
  let ec2: FakeEc2;
  const sqs = new SQSClient({ region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  const sqsMock = mockClient(sqs);
  let receives = 0;

  before(async () => {
    ec2 = new FakeEc2(() => Date.now());
    ec2.weather = 'throttled';
    sqsMock.on(ReceiveMessageCommand).callsFake(async () => {
      if (receives++ === 0) throw new SQSServiceException({ name: 'AWS.SimpleQueueService.NonExistentQueue', $fault: 'client', $metadata: { httpStatusCode: 400 }, message: 'The specified queue does not exist.' });
      await sleep(200);
      return { Messages: [] };
    });
    farm = await new TestFarm(
      farmConfigRaw({
        dashboard: { sampleSec: 1 },
        jobTypes: { b2g: { overflow: { pool: 'cloud' } } },
        pools: {
          cloud: {
            provider: 'ec2',
            maxInstances: 1,
            price: { onDemandPerHour: 0.5 },
            ec2: { region: 'eu-west-1', launchTemplate: { name: 'builder' }, subnetIds: ['subnet-a'] },
            spotNotices: { queueUrl: QUEUE },
          },
        },
      }),
      { ec2Client: () => ec2.client, sqsClient: () => sqs },
    ).start();
  });
  after(async () => {
    await farm.stop();
    ec2.restore();
    sqsMock.restore();
  });

  it('counts each failed EC2 and SQS request by service, action, code and disposition', async () => {
    await waitUntil(() => ec2.calls.some((c) => c.error === 'RequestLimitExceeded'), { what: 'a throttled EC2 call' });
    ec2.weather = 'ok';
    const m = await scrape(farm);
    assert.ok((m.get('spillway_aws_api_errors_total{service="ec2",action="DescribeLaunchTemplates",code="RequestLimitExceeded",disposition="retry"}') ?? 0) >= 1, [...m.keys()].filter((k) => k.includes('aws')).join(', '));
    assert.equal(m.get('spillway_aws_api_errors_total{service="sqs",action="ReceiveMessage",code="AWS.SimpleQueueService.NonExistentQueue",disposition="fatal"}'), 1);
  });

  it('counts billed instance-hours and their cost at the pool price', async () => {
    ec2.weather = 'ok';
    await farm.submit({ type: 'b2g', argv: ['true'] });
    await waitUntil(() => ec2.created().length === 1, { what: 'a launch', timeoutMs: 15_000 });
    let hours = 0;
    await waitUntil(
      async () => {
        hours = (await scrape(farm)).get('spillway_instance_hours_total{pool="cloud",market="ondemand"}') ?? 0;
        return hours > 0;
      },
      { what: 'instance-hours accrued', timeoutMs: 10_000, everyMs: 200 },
    );
    const m = await scrape(farm);
    assert.ok(m.get('spillway_instances_oldest_seconds{pool="cloud",state="booting"}')! >= 0);
    assert.equal(m.get('spillway_overflow_over_threshold{pool="cloud",type="b2g"}'), 1, 'the build still waits: over the threshold');
    assert.equal(m.get('spillway_pool_launch_failing{pool="cloud"}'), 0);
    const h = m.get('spillway_instance_hours_total{pool="cloud",market="ondemand"}')!;
    const cost = m.get('spillway_instance_cost_total{pool="cloud",market="ondemand"}')!;
    assert.ok(h > 0 && h < 0.01, `a few seconds, in hours: ${h}`);
    assert.ok(Math.abs(cost - h * 0.5) < 1e-12, `cost ${cost} = ${h} h x 0.5`);
    // The same seconds the ledger charged: the dashboard's cost report agrees.
    const report = await farm.api<{ today: { pools: Array<{ pool: string; onDemandHours: number }> } }>('/api/cost');
    assert.ok(report.today.pools.find((p) => p.pool === 'cloud')!.onDemandHours >= h - 1e-9, 'the ledger holds at least what was counted');
  });
});
