/**
 * The only module that speaks the SQS SDK: long-polled receives and batched deletes of the
 * queue EventBridge fills with EC2's events, mapped to plain messages and a retry verdict.
 * Every call takes the caller's SQSClient (one per region, made by the composition root) and
 * an AbortSignal that reaches `send()`.
 */
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { AWS_THROTTLED, AWS_TRANSIENT, awsErrorCode, isServerFault } from './aws-errors';

/** The SDK's client, named here so no other module imports the SDK. */
export type SqsClient = SQSClient;

/** What {@link createSqsClient} needs. */
export interface CreateSqsClientOptions {
  region: string;
  /** A VPC interface endpoint for SQS, e.g. `https://vpce-….sqs.eu-west-1.vpce.amazonaws.com`. */
  endpoint?: string | undefined;
}

/**
 * An SQS client for one region. The SDK's own retries are off: the consumer owns the backoff
 * (on the injected clock, logged), as the EC2 retrier does for EC2. The request timeout sits
 * above the 20 s long poll.
 */
export function createSqsClient(options: CreateSqsClientOptions): SQSClient {
  return new SQSClient({
    region: options.region,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    maxAttempts: 1,
    retryMode: 'standard',
    requestHandler: { connectionTimeout: 3000, requestTimeout: 30_000 },
  });
}

/** One received message: its receipt handle is what deleting it takes. */
export interface QueueMessage {
  messageId: string;
  receiptHandle: string;
  body: string;
  /** How often SQS has handed this message out (1 on first delivery). */
  receiveCount: number;
}

/** The long poll SQS allows at most, and the batch size it allows at most. */
const WAIT_TIME_SEC = 20;
const MAX_MESSAGES = 10;

/**
 * Up to 10 messages, waiting up to 20 s for the first (long polling: no busy loop on an empty
 * queue). Received messages stay invisible to other consumers for `visibilityTimeoutSec`; one
 * not deleted by then is delivered again.
 */
export async function receiveMessages(client: SQSClient, queueUrl: string, visibilityTimeoutSec: number, signal: AbortSignal): Promise<QueueMessage[]> {
  const out = await client.send(
    new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      MaxNumberOfMessages: MAX_MESSAGES,
      WaitTimeSeconds: WAIT_TIME_SEC,
      VisibilityTimeout: visibilityTimeoutSec,
      MessageSystemAttributeNames: ['ApproximateReceiveCount'],
    }),
    { abortSignal: signal },
  );
  const messages: QueueMessage[] = [];
  for (const m of out.Messages ?? []) {
    // A message without a handle cannot be deleted, nor acted on safely twice: skip it.
    if (!m.ReceiptHandle || !m.MessageId) continue;
    messages.push({
      messageId: m.MessageId,
      receiptHandle: m.ReceiptHandle,
      body: m.Body ?? '',
      receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? 1),
    });
  }
  return messages;
}

/** Deletes handled messages in one request; returns the ids SQS refused to delete, with why. */
export async function deleteMessages(
  client: SQSClient,
  queueUrl: string,
  messages: readonly Pick<QueueMessage, 'messageId' | 'receiptHandle'>[],
  signal: AbortSignal,
): Promise<Array<{ messageId: string; code: string | undefined }>> {
  if (messages.length === 0) return [];
  const out = await client.send(
    new DeleteMessageBatchCommand({
      QueueUrl: queueUrl,
      // Batch entry ids must be unique and alphanumeric; message ids are UUIDs, positions are neither.
      Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.receiptHandle })),
    }),
    { abortSignal: signal },
  );
  return (out.Failed ?? []).map((f) => ({ messageId: messages[Number(f.Id)]?.messageId ?? f.Id ?? '?', code: f.Code }));
}

/** What an SQS failure means: slow down, try again, or a configuration problem (still retried, slowly). */
export function classifySqsError(err: unknown, signal?: AbortSignal): { kind: 'aborted' | 'throttled' | 'transient' | 'fatal'; code: string | undefined } {
  const code = awsErrorCode(err);
  if (signal?.aborted || code === 'AbortError') return { kind: 'aborted', code };
  if (code !== undefined && AWS_THROTTLED.has(code)) return { kind: 'throttled', code };
  if ((code !== undefined && AWS_TRANSIENT.has(code)) || isServerFault(err)) return { kind: 'transient', code };
  // QueueDoesNotExist, AccessDenied, InvalidAddress, a bad region: nothing changes until a human acts.
  return { kind: 'fatal', code };
}
