import { BackgroundLoop, equalJitterDelay, type BackoffPolicy, type Clock, type LoopNext, type Logger } from '../lib';
import type { AwsErrorObserver } from './aws-errors';
import { parseEc2Event, type Ec2Event } from './ec2-event';
import { classifySqsError, deleteMessages, receiveMessages, type QueueMessage, type SqsClient } from './sqs-api';

const DEFAULT_RECEIVE_BACKOFF: Readonly<BackoffPolicy> = Object.freeze({ baseMs: 1000, maxMs: 60_000 });

/** Where parsed events go. */
export interface Ec2EventSink {
  /**
   * Acts on one event of an instance in `pools` (any pool: `undefined`): `unmanaged` when it is
   * none of spillway's. A rejection leaves the message in the queue, to be delivered again.
   */
  onEc2Event(event: Ec2Event, pools: readonly string[] | undefined): Promise<'handled' | 'unmanaged'>;
}

/** Dependencies of {@link SpotNoticeConsumer}. */
export interface SpotNoticeConsumerDeps {
  client: SqsClient;
  queueUrl: string;
  /** Pools whose instances this queue's events concern; `undefined`: every pool. */
  pools: readonly string[] | undefined;
  sink: Ec2EventSink;
  clock: Clock;
  log: Logger;
  /**
   * How long received messages stay hidden from other consumers. A batch not handled within it
   * is not deleted (it may already be someone else's), so it comes back. @defaultValue 60
   */
  visibilityTimeoutSec?: number;
  /** Backoff after a failed receive: doubles from `baseMs` up to `maxMs`. @defaultValue `{ baseMs: 1000, maxMs: 60000 }` */
  backoff?: Partial<BackoffPolicy>;
  /** Jitter source in [0, 1). @defaultValue Math.random */
  random?: () => number;
  /** Told of every failed SQS request, for the API-error metrics. */
  onAwsError?: AwsErrorObserver;
}

/**
 * Consumes the SQS queue EventBridge fills with EC2's events: long-polls it, hands each spot
 * interruption warning, rebalance recommendation and state change to the sink, and deletes
 * every message once handled. Malformed and unknown messages are logged and deleted (they would
 * never parse better); an event the sink fails on stays for redelivery. SQS failures back off
 * on the injected clock and never end the loop.
 */
export class SpotNoticeConsumer {
  private readonly loop: BackgroundLoop;
  private readonly log: Logger;
  private readonly visibilityMs: number;
  private failures = 0;
  private started = false;
  /** The SQS action in flight, so a failure names it. */
  private action: 'ReceiveMessage' | 'DeleteMessageBatch' = 'ReceiveMessage';

  constructor(private readonly d: SpotNoticeConsumerDeps) {
    this.log = d.log.child({ component: 'spot-notices', queueUrl: d.queueUrl });
    this.visibilityMs = (d.visibilityTimeoutSec ?? 60) * 1000;
    // Long polls back to back: the receive itself waits for messages, so no pause between them.
    this.loop = new BackgroundLoop({
      name: 'spot-notices',
      everyMs: 0,
      runAtStart: true,
      run: (signal) => this.round(signal),
      clock: d.clock,
      log: this.log,
      errorEvent: 'notice.receive-failed',
    });
  }

  start(): void {
    if (!this.started) this.log.info('notice.consuming', { pools: this.d.pools ?? 'all' });
    this.started = true;
    this.loop.start();
  }

  async stop(): Promise<void> {
    await this.loop.stop();
  }

  /** One receive, handle, delete round; returns how many messages came. Throws what SQS threw. */
  async poll(signal: AbortSignal): Promise<number> {
    this.action = 'ReceiveMessage';
    const messages = await untilAborted(receiveMessages(this.d.client, this.d.queueUrl, this.visibilityMs / 1000, signal), signal);
    const receivedAt = this.d.clock.now();
    const done: QueueMessage[] = [];
    for (const m of messages) if (await this.handle(m)) done.push(m);
    if (this.d.clock.now() - receivedAt >= this.visibilityMs) {
      this.log.warn('notice.delete-skipped', { messages: done.length, reason: 'handled after the visibility timeout: they will be delivered again' });
      return messages.length;
    }
    this.action = 'DeleteMessageBatch';
    for (const f of await untilAborted(deleteMessages(this.d.client, this.d.queueUrl, done, signal), signal)) {
      this.log.warn('notice.delete-failed', { messageId: f.messageId, code: f.code });
    }
    return messages.length;
  }

  /** One poll; after a failed one, the pause before the next. */
  private async round(signal: AbortSignal): Promise<LoopNext> {
    try {
      await this.poll(signal);
      this.failures = 0;
      return undefined;
    } catch (err) {
      const c = classifySqsError(err, signal);
      if (c.kind === 'aborted') return 'done';
      this.d.onAwsError?.({ service: 'sqs', action: this.action, code: c.code ?? 'unknown', disposition: c.kind === 'fatal' ? 'fatal' : 'retry' });
      this.failures++;
      const { baseMs, maxMs } = { ...DEFAULT_RECEIVE_BACKOFF, ...this.d.backoff };
      // A configuration problem will not clear in a second: ask again only at the slowest pace.
      const delayMs = equalJitterDelay(this.failures, { baseMs: c.kind === 'fatal' ? maxMs : baseMs, maxMs }, this.d.random ?? Math.random);
      const fields = { code: c.code, kind: c.kind, failures: this.failures, delayMs, error: (err as Error).message };
      if (c.kind === 'fatal') this.log.error('notice.receive-failed', fields);
      else this.log.warn('notice.receive-failed', fields);
      return { afterMs: delayMs };
    }
  }

  /** Whether the message is done with (to be deleted). */
  private async handle(m: QueueMessage): Promise<boolean> {
    const parsed = parseEc2Event(m.body);
    if (!parsed.ok) {
      const fields = { messageId: m.messageId, reason: parsed.reason };
      if (parsed.unknown) this.log.info('notice.unknown', fields);
      else this.log.warn('notice.invalid', { ...fields, body: m.body.slice(0, 200) });
      return true;
    }
    const e = parsed.event;
    try {
      const outcome = await this.d.sink.onEc2Event(e, this.d.pools);
      if (outcome === 'unmanaged') this.log.debug('notice.ignored', { messageId: m.messageId, instanceId: e.instanceId, kind: e.kind, reason: 'not an instance of these pools' });
      return true;
    } catch (err) {
      this.log.error('notice.handle-failed', { messageId: m.messageId, instanceId: e.instanceId, kind: e.kind, receiveCount: m.receiveCount, error: (err as Error).message });
      return false;
    }
  }
}

/**
 * Settles with `p`, or rejects as soon as `signal` aborts: the SDK aborts its request too, but
 * one already answered may still be parsing, and `stop()` should not wait on it.
 */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => (signal.removeEventListener('abort', onAbort), resolve(v)),
      (e: unknown) => (signal.removeEventListener('abort', onAbort), reject(e)),
    );
  });
}
