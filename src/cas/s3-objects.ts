/**
 * The only module that speaks the S3 SDK: whole-object put, get (as a stream) and head, mapped
 * to plain values and one error type with the S3 (or network) error code and a retry verdict.
 * The client is made once by the composition root ({@link createS3Client}) and passed in; every
 * call takes an AbortSignal that reaches `send()`.
 */
import type * as S3Sdk from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { SpillwayError } from '../lib';

/** The SDK's client, named here so no other module imports the SDK. */
export type S3ClientHandle = S3Client;

let loaded: typeof S3Sdk | undefined;
/** The SDK on first use: ~20 MB resident that a cache without `cas.s3` never needs (see "Memory" in the README). */
function sdk(): typeof S3Sdk {
  return (loaded ??= require('@aws-sdk/client-s3') as typeof S3Sdk);
}

/** What {@link createS3Client} needs; credentials come from the SDK's default chain. */
export interface CreateS3ClientOptions {
  region: string;
  /** An S3-compatible server or a VPC endpoint, e.g. `http://127.0.0.1:9000`. */
  endpoint?: string | undefined;
  /** Bucket in the path instead of the host name (most S3-compatible servers want it). */
  forcePathStyle?: boolean | undefined;
  /** For tests against a local server; production uses the default credential chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string } | undefined;
}

/**
 * An S3 client for the cache's bucket. The SDK's own retries stay at one extra try: the upload
 * queue owns the backoff. Checksums only where S3 requires them: the blobs are content
 * addressed and verified by their SHA-256 on the way back, and S3-compatible servers often
 * reject the SDK's streaming (aws-chunked) checksum trailers.
 */
export function createS3Client(options: CreateS3ClientOptions): S3Client {
  return new (sdk().S3Client)({
    region: options.region,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.forcePathStyle ? { forcePathStyle: true } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
    maxAttempts: 2,
    retryMode: 'standard',
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { connectionTimeout: 3000, requestTimeout: 60_000 },
  });
}

/**
 * An S3 call failed. `s3Code` is S3's error code (`AccessDenied`, `SlowDown`, ...) or Node's
 * network code (`ECONNREFUSED`); `disposition` says whether trying again later can help.
 */
export class S3TierError extends SpillwayError {
  readonly code = 'SPILLWAY_E_CAS_S3';
  readonly disposition: 'retry' | 'fatal';
  constructor(
    message: string,
    readonly s3Code: string,
    retry: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.disposition = retry ? 'retry' : 'fatal';
  }
}

/** An object being read: its length as S3 reports it, and its unverified bytes. */
export interface ObjectBody {
  size: number;
  stream: Readable;
}

/** What the S3 tier needs of a bucket (a fake or another engine could stand behind it). */
export interface ObjectStore {
  /** Writes the whole object; `body` is `size` bytes. */
  put(key: string, body: Buffer | Readable, size: number, signal: AbortSignal): Promise<void>;
  /** The object, or undefined when there is none. */
  get(key: string, signal: AbortSignal): Promise<ObjectBody | undefined>;
  /** The object's size, or undefined when there is none. */
  head(key: string, signal: AbortSignal): Promise<number | undefined>;
}

/** Codes after which the same request can succeed later (throttling, S3's faults, the network). */
const RETRYABLE = new Set([
  'SlowDown',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'InternalError',
  'ServiceUnavailable',
  'ThrottlingException',
  'TimeoutError',
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** {@link ObjectStore} on one S3 bucket. */
export class S3Objects implements ObjectStore {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
  ) {}

  async put(key: string, body: Buffer | Readable, size: number, signal: AbortSignal): Promise<void> {
    const { PutObjectCommand } = sdk();
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: size, ContentType: 'application/octet-stream' }), { abortSignal: signal });
    } catch (err) {
      throw mapError(err, 'PutObject', key);
    }
  }

  async get(key: string, signal: AbortSignal): Promise<ObjectBody | undefined> {
    const { GetObjectCommand } = sdk();
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: signal });
      const stream = out.Body as Readable | undefined;
      if (!stream || out.ContentLength === undefined) {
        stream?.destroy();
        throw new S3TierError(`GetObject ${key}: no body or length`, 'NoBody', true);
      }
      return { size: out.ContentLength, stream };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw mapError(err, 'GetObject', key);
    }
  }

  async head(key: string, signal: AbortSignal): Promise<number | undefined> {
    const { HeadObjectCommand } = sdk();
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: signal });
      return out.ContentLength;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw mapError(err, 'HeadObject', key);
    }
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}

function mapError(err: unknown, action: string, key: string): S3TierError {
  if (err instanceof S3TierError) return err;
  const e = (err ?? {}) as { name?: unknown; code?: unknown; Code?: unknown; $fault?: unknown; message?: unknown };
  const code =
    typeof e.code === 'string' && /^E[A-Z_]+$/.test(e.code)
      ? e.code
      : typeof e.Code === 'string'
        ? e.Code
        : typeof e.name === 'string' && e.name !== 'Error'
          ? e.name
          : 'unknown';
  // HEAD answers carry no body, so a 403 there has no code but the status.
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const named = code === 'unknown' && status !== undefined ? `Http${status}` : code;
  const retry = RETRYABLE.has(named) || e.$fault === 'server' || (status !== undefined && status >= 500);
  return new S3TierError(`${action} ${key}: ${named}: ${typeof e.message === 'string' ? e.message : String(err)}`, named, retry, { cause: err });
}
