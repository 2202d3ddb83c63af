import { strict as assert } from 'node:assert';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { createLogger, type LogEntry } from '../../src/lib';
import { SpotNoticeConsumer, type Ec2Event } from '../../src/provisioner';
import { interruptionWarning, otherEvent, rebalanceRecommendation, stateChange } from '../fakes/ec2-events';
import { FakeClock } from '../fakes/fake-clock';
import { HostileInput } from '../helpers/hostile-input';
import { seededRandom, seedFrom } from '../helpers/prng';

const QUEUE = 'https://sqs.eu-west-1.amazonaws.com/123456789012/spillway-ec2-events';
const MANAGED = 'i-0aaaaaaaaaaaaaaaa';
const EC2_ID = /^i-[0-9a-f]{8,17}$/;

/**
 * Hostile SQS messages (issue 6's fuzz run, the SQS part): a seeded batch of garbage, bad
 * JSON, deep nesting and valid EventBridge events with one field broken, fed to the real
 * consumer through the SDK client (mocked). The consumer must never throw, must delete every
 * message it received (nothing poison stays in the queue), and must hand over only events that
 * are well formed, and every intact event for a managed instance.
 */
describe('spot notice consumer: a seeded fuzz run of hostile SQS messages', function () {
  this.timeout(20_000);
  const seed = seedFrom('SPILLWAY_FUZZ_SEED');
  const count = Number(process.env.SPILLWAY_FUZZ_COUNT ?? 500);
  const client = new SQSClient({ region: 'eu-west-1', maxAttempts: 1 });
  const sqs = mockClient(client);
  after(() => sqs.restore());

  it(`survives ${count} messages (replay: SPILLWAY_FUZZ_SEED=${seed})`, async () => {
    const h = new HostileInput(seededRandom(seed));
    const valid = [
      () => interruptionWarning(MANAGED, h.pick(['terminate', 'stop', 'hibernate'] as const)),
      () => rebalanceRecommendation(MANAGED),
      () => stateChange(MANAGED, h.pick(['pending', 'running', 'stopping', 'stopped', 'shutting-down', 'terminated'] as const)),
      () => interruptionWarning('i-0bbbbbbbbbbbbbbbb'),
      () => otherEvent(),
    ];
    const intactManaged = new Set<string>();
    const body = (handle: string): string => {
      switch (h.int(6)) {
        case 0:
          return h.badJson();
        case 1:
          return JSON.stringify(h.value(4));
        case 2:
          return h.deep(h.pick([64, 2000, 20_000]));
        case 3: {
          // A real event with one field broken, at the top or inside `detail`.
          const event = JSON.parse(h.pick(valid)()) as Record<string, unknown>;
          if (h.chance(0.5)) return JSON.stringify(h.mutate(event));
          return JSON.stringify({ ...event, detail: h.mutate(event.detail as Record<string, unknown>) });
        }
        default: {
          const text = h.pick(valid)();
          if (text.includes(MANAGED)) intactManaged.add(handle);
          return text;
        }
      }
    };
    const batches: Array<Array<{ MessageId?: string; ReceiptHandle?: string; Body?: string; Attributes?: Record<string, string> }>> = [];
    for (let n = 0; n < count; ) {
      const size = Math.min(count - n, 1 + h.int(10));
      batches.push(
        Array.from({ length: size }, () => {
          const handle = `rh-${n++}`;
          return { MessageId: `m-${handle}`, ReceiptHandle: handle, Body: body(handle), Attributes: { ApproximateReceiveCount: h.pick(['1', '3', 'x', '']) } };
        }),
      );
    }
    let next = 0;
    sqs.on(ReceiveMessageCommand).callsFake(() => ({ Messages: batches[next++] ?? [] }));
    sqs.on(DeleteMessageBatchCommand).callsFake((input: { Entries?: Array<{ Id?: string }> }) => ({
      Successful: (input.Entries ?? []).map((e) => ({ Id: e.Id })),
      Failed: [],
    }));

    const handed: Ec2Event[] = [];
    const entries: LogEntry[] = [];
    const consumer = new SpotNoticeConsumer({
      client,
      queueUrl: QUEUE,
      pools: ['spot'],
      sink: {
        onEc2Event: async (e: Ec2Event) => {
          handed.push(e);
          return e.instanceId === MANAGED ? 'handled' : 'unmanaged';
        },
      },
      clock: new FakeClock(),
      log: createLogger({ silent: true, level: 'debug', sink: (e) => entries.push(e) }),
      random: () => 1,
    });
    const signal = new AbortController().signal;
    for (let i = 0; i < batches.length; i++) await consumer.poll(signal);

    const deleted = new Set(sqs.commandCalls(DeleteMessageBatchCommand).flatMap((c) => (c.args[0].input.Entries ?? []).map((e) => e.ReceiptHandle!)));
    assert.equal(deleted.size, count, 'every message is deleted: nothing poison is left to come back');
    for (const e of handed) {
      assert.match(e.instanceId, EC2_ID);
      assert.ok(['spot-interruption', 'rebalance', 'state-change'].includes(e.kind), `kind ${String(e.kind)}`);
    }
    const managedHanded = handed.filter((e) => e.instanceId === MANAGED).length;
    assert.ok(managedHanded >= intactManaged.size, `${managedHanded} managed events handed over, ${intactManaged.size} were sent intact`);
    assert.deepEqual(
      entries.filter((e) => e.level === 'error').map((e) => e.event),
      [],
      'hostile messages are warnings, never errors of the consumer',
    );
  });
});
