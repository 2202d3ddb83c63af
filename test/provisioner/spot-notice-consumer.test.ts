import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient, SQSServiceException } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { createLogger, type LogEntry } from '../../src/lib';
import { SpotNoticeConsumer, type Ec2Event } from '../../src/provisioner';
import { FakeClock } from '../fakes/fake-clock';
import { interruptionWarning, otherEvent, rebalanceRecommendation, stateChange } from '../fakes/ec2-events';

const QUEUE = 'https://sqs.eu-west-1.amazonaws.com/123456789012/spillway-ec2-events';
const MANAGED = 'i-0aaaaaaaaaaaaaaaa';
const STRANGER = 'i-0bbbbbbbbbbbbbbbb';

function throttled(): SQSServiceException {
  return new SQSServiceException({ name: 'RequestThrottled', $fault: 'client', $metadata: { httpStatusCode: 403 }, message: 'Request is throttled.' });
}

/** A sink that knows one managed instance and can be told to fail. */
class Sink {
  readonly events: Ec2Event[] = [];
  failNext = false;
  async onEc2Event(e: Ec2Event): Promise<'handled' | 'unmanaged'> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('redis is down');
    }
    if (e.instanceId !== MANAGED) return 'unmanaged';
    this.events.push(e);
    return 'handled';
  }
}

const msg = (id: string, body: string) => ({ MessageId: id, ReceiptHandle: `rh-${id}`, Body: body, Attributes: { ApproximateReceiveCount: '1' } });

describe('provisioner/spot-notice-consumer (aws-sdk-client-mock)', () => {
  const client = new SQSClient({ region: 'eu-west-1', maxAttempts: 1 });
  const sqs = mockClient(client);
  let entries: LogEntry[];
  let sink: Sink;
  let clock: FakeClock;

  function consumer(): SpotNoticeConsumer {
    const log = createLogger({ silent: true, level: 'debug', sink: (e) => entries.push(e) });
    return new SpotNoticeConsumer({ client, queueUrl: QUEUE, pools: ['spot'], sink, clock, log, random: () => 1 });
  }
  const deleted = () => sqs.commandCalls(DeleteMessageBatchCommand).flatMap((c) => (c.args[0].input.Entries ?? []).map((e) => e.ReceiptHandle));

  beforeEach(() => {
    sqs.reset();
    entries = [];
    sink = new Sink();
    clock = new FakeClock();
  });
  after(() => sqs.restore());

  it('long-polls for up to 10 messages, hands each EC2 event over, and deletes them all once handled', async () => {
    sqs.on(ReceiveMessageCommand).resolves({
      Messages: [msg('1', interruptionWarning(MANAGED)), msg('2', rebalanceRecommendation(MANAGED)), msg('3', stateChange(MANAGED, 'shutting-down'))],
    });
    sqs.on(DeleteMessageBatchCommand).resolves({ Successful: [{ Id: '0' }, { Id: '1' }, { Id: '2' }], Failed: [] });
    assert.equal(await consumer().poll(new AbortController().signal), 3);
    const input = sqs.commandCalls(ReceiveMessageCommand)[0]!.args[0].input;
    assert.equal(input.QueueUrl, QUEUE);
    assert.equal(input.WaitTimeSeconds, 20);
    assert.equal(input.MaxNumberOfMessages, 10);
    assert.equal(input.VisibilityTimeout, 60);
    assert.deepEqual(
      sink.events.map((e) => [e.kind, e.instanceId, 'action' in e ? e.action : 'state' in e ? e.state : null]),
      [
        ['spot-interruption', MANAGED, 'terminate'],
        ['rebalance', MANAGED, null],
        ['state-change', MANAGED, 'shutting-down'],
      ],
    );
    assert.deepEqual(deleted(), ['rh-1', 'rh-2', 'rh-3']);
  });

  it('logs and deletes malformed bodies, other events and instances of no managed pool; the rest is handled', async () => {
    sqs.on(ReceiveMessageCommand).resolves({
      Messages: [
        msg('bad-json', '{"detail-type": "EC2 Spot'),
        msg('no-envelope', '{"hello": "world"}'),
        msg('bad-detail', interruptionWarning(MANAGED).replace('"terminate"', '"explode"')),
        msg('other', otherEvent()),
        msg('stranger', interruptionWarning(STRANGER)),
        msg('ok', interruptionWarning(MANAGED, 'stop')),
      ],
    });
    sqs.on(DeleteMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    await consumer().poll(new AbortController().signal);
    assert.deepEqual(deleted(), ['rh-bad-json', 'rh-no-envelope', 'rh-bad-detail', 'rh-other', 'rh-stranger', 'rh-ok']);
    assert.equal(sink.events.length, 1);
    const invalid = entries.filter((e) => e.event === 'notice.invalid').map((e) => e.messageId);
    assert.deepEqual(invalid, ['bad-json', 'no-envelope', 'bad-detail']);
    assert.match(String(entries.find((e) => e.messageId === 'bad-detail')?.reason), /instance-action/);
    assert.equal(entries.find((e) => e.event === 'notice.unknown')?.messageId, 'other');
    const ignored = entries.find((e) => e.event === 'notice.ignored');
    assert.equal(ignored?.instanceId, STRANGER);
    assert.equal(ignored?.level, 'debug');
  });

  it('keeps a message the sink failed on, for redelivery after the visibility timeout', async () => {
    sqs.on(ReceiveMessageCommand).resolves({ Messages: [msg('1', interruptionWarning(MANAGED)), msg('2', rebalanceRecommendation(MANAGED))] });
    sqs.on(DeleteMessageBatchCommand).resolves({ Successful: [{ Id: '0' }], Failed: [] });
    sink.failNext = true;
    await consumer().poll(new AbortController().signal);
    assert.deepEqual(deleted(), ['rh-2']);
    assert.equal(entries.find((e) => e.event === 'notice.handle-failed')?.messageId, '1');
  });

  it('deletes nothing when handling outlasted the visibility timeout (the messages may be redelivered already)', async () => {
    sqs.on(ReceiveMessageCommand).resolves({ Messages: [msg('1', interruptionWarning(MANAGED))] });
    const slow = { onEc2Event: async () => (clock.advance(61_000), 'handled' as const) };
    const log = createLogger({ silent: true, level: 'debug', sink: (e) => entries.push(e) });
    await new SpotNoticeConsumer({ client, queueUrl: QUEUE, pools: undefined, sink: slow, clock, log }).poll(new AbortController().signal);
    assert.equal(sqs.commandCalls(DeleteMessageBatchCommand).length, 0);
    assert.ok(entries.some((e) => e.event === 'notice.delete-skipped'));
  });

  it('logs deletes SQS refused', async () => {
    sqs.on(ReceiveMessageCommand).resolves({ Messages: [msg('1', interruptionWarning(MANAGED))] });
    sqs.on(DeleteMessageBatchCommand).resolves({ Successful: [], Failed: [{ Id: '0', Code: 'ReceiptHandleIsInvalid', SenderFault: true }] });
    await consumer().poll(new AbortController().signal);
    const failed = entries.find((e) => e.event === 'notice.delete-failed');
    assert.deepEqual([failed?.messageId, failed?.code], ['1', 'ReceiptHandleIsInvalid']);
  });

  it('backs off on throttling on the injected clock, doubling, and resets after a good receive', async () => {
    let receives = 0;
    let hanging!: () => void;
    const longPoll = new Promise<void>((resolve) => (hanging = resolve));
    sqs.on(ReceiveMessageCommand).callsFake(async () => {
      receives++;
      if (receives <= 3) throw throttled();
      if (receives === 4) return { Messages: [msg('1', interruptionWarning(MANAGED))] };
      if (receives === 5) throw throttled();
      // Then a long poll that never answers: stop() must not wait for it.
      hanging();
      return new Promise(() => undefined);
    });
    sqs.on(DeleteMessageBatchCommand).resolves({ Successful: [{ Id: '0' }], Failed: [] });
    const c = consumer();
    c.start();
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      await clock.sleeping();
      const e = entries.filter((x) => x.event === 'notice.receive-failed').at(-1)!;
      delays.push(Number(e.delayMs));
      assert.equal(e.kind, 'throttled');
      assert.equal(e.code, 'RequestThrottled');
      clock.advance(Number(e.delayMs));
    }
    // random() = 1: the full ceiling, 1 s doubling; the good receive in between resets it.
    assert.deepEqual(delays, [1000, 2000, 4000, 1000]);
    assert.equal(sink.events.length, 1);
    assert.deepEqual(deleted(), ['rh-1']);
    await longPoll;
    await c.stop();
    assert.equal(receives, 6);
  });

  it('a configuration error (no such queue) is retried only at the slowest pace, logged as an error', async () => {
    sqs.on(ReceiveMessageCommand).rejects(new SQSServiceException({ name: 'QueueDoesNotExist', $fault: 'client', $metadata: {}, message: 'The specified queue does not exist.' }));
    const c = consumer();
    c.start();
    await clock.sleeping();
    await c.stop();
    const e = entries.find((x) => x.event === 'notice.receive-failed')!;
    assert.deepEqual([e.level, e.kind, e.delayMs], ['error', 'fatal', 60_000]);
  });
});

/** SQS's JSON protocol answered by hand, so the request and answer pass the SDK's whole middleware stack. */
function sqsOverHttp(bodies: string[]): { client: SQSClient; calls: Array<{ target: string; input: Record<string, unknown> }> } {
  const calls: Array<{ target: string; input: Record<string, unknown> }> = [];
  const client = new SQSClient({
    region: 'eu-west-1',
    maxAttempts: 1,
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    requestHandler: {
      handle: async (req: { headers: Record<string, string>; body: Uint8Array | string }) => {
        const target = req.headers['x-amz-target'] ?? '';
        const input = JSON.parse(typeof req.body === 'string' ? req.body : new TextDecoder().decode(req.body)) as Record<string, unknown>;
        calls.push({ target, input });
        const messages = bodies.splice(0).map((b, i) => ({
          MessageId: `m${i}`,
          ReceiptHandle: `rh${i}`,
          Body: b,
          // The SDK checks every body against its MD5, as SQS sends it.
          MD5OfBody: createHash('md5').update(b).digest('hex'),
          Attributes: { ApproximateReceiveCount: '1' },
        }));
        const out = target.endsWith('.ReceiveMessage') ? { Messages: messages } : { Successful: (input.Entries as Array<{ Id: string }>).map((e) => ({ Id: e.Id })), Failed: [] };
        return { response: { statusCode: 200, headers: { 'content-type': 'application/x-amz-json-1.0' }, body: Buffer.from(JSON.stringify(out)) } };
      },
    },
  });
  return { client, calls };
}

describe('provisioner/spot-notice-consumer (through the SDK middleware stack)', () => {
  it('receives, verifies and deletes messages as SQS speaks them', async () => {
    const { client, calls } = sqsOverHttp([interruptionWarning(MANAGED), 'not json']);
    const sink = new Sink();
    const log = createLogger({ silent: true });
    const n = await new SpotNoticeConsumer({ client, queueUrl: QUEUE, pools: undefined, sink, clock: new FakeClock(), log }).poll(new AbortController().signal);
    assert.equal(n, 2);
    assert.deepEqual(
      calls.map((c) => c.target),
      ['AmazonSQS.ReceiveMessage', 'AmazonSQS.DeleteMessageBatch'],
    );
    assert.deepEqual([calls[0]!.input.WaitTimeSeconds, calls[0]!.input.MaxNumberOfMessages, calls[0]!.input.QueueUrl], [20, 10, QUEUE]);
    assert.deepEqual(calls[1]!.input.Entries, [
      { Id: '0', ReceiptHandle: 'rh0' },
      { Id: '1', ReceiptHandle: 'rh1' },
    ]);
    assert.equal(sink.events[0]?.kind, 'spot-interruption');
  });
});
