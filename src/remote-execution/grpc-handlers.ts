import type {
  ServerReadableStream,
  ServerUnaryCall,
  ServerWritableStream,
  handleClientStreamingCall,
  handleServerStreamingCall,
  handleUnaryCall,
  sendUnaryData,
} from '@grpc/grpc-js';
import type { Logger } from '../lib';
import { rpcStart, traceRpc } from './reapi-trace';
import { Code, toRpcError, type RpcError } from './rpc-error';

/** Errors that mean "the client asked for something wrong" are the client's business; the rest are logged. */
function report(log: Logger, method: string, err: unknown): RpcError {
  const e = toRpcError(err);
  if (e.code === Code.INTERNAL || e.code === Code.UNAVAILABLE) log.error('grpc.error', { method, code: e.code, err });
  return e;
}

/** Answers a call that returns one message (unary or client-streaming) with what `run` settles to. */
function answer<Res>(log: Logger, method: string, run: () => Promise<Res>, callback: sendUnaryData<Res>): void {
  const start = rpcStart();
  run().then(
    (res) => {
      callback(null, res);
      traceRpc(method, Code.OK, start);
    },
    (err: unknown) => {
      const e = report(log, method, err);
      callback(e);
      traceRpc(method, e.code, start);
    },
  );
}

/** A unary handler from an async function; a throw becomes the call's status. */
export function unary<Req, Res>(log: Logger, method: string, fn: (call: ServerUnaryCall<Req, Res>) => Promise<Res>): handleUnaryCall<Req, Res> {
  return (call, callback: sendUnaryData<Res>) => answer(log, method, () => fn(call), callback);
}

/** A server-streaming handler from an async function that writes with {@link send}; ends the call when it returns. */
export function serverStream<Req, Res>(log: Logger, method: string, fn: (call: ServerWritableStream<Req, Res>) => Promise<void>): handleServerStreamingCall<Req, Res> {
  return (call) => {
    const start = rpcStart();
    fn(call).then(
      () => {
        if (!call.cancelled) call.end();
        traceRpc(method, call.cancelled ? Code.CANCELLED : Code.OK, start);
      },
      (err: unknown) => {
        const e = report(log, method, err);
        if (!call.cancelled) call.emit('error', e);
        traceRpc(method, call.cancelled ? Code.CANCELLED : e.code, start);
      },
    );
  };
}

/**
 * Writes one message, waiting while the client reads slowly. Rejects when the client has
 * gone, so a producer loop stops instead of buffering a whole blob for nobody.
 */
export async function send<Res>(call: ServerWritableStream<unknown, Res>, message: Res): Promise<void> {
  if (call.cancelled) throw new Error('call cancelled');
  if (call.write(message)) return;
  await new Promise<void>((resolve, reject) => {
    const done = (): void => {
      call.off('drain', onDrain);
      call.off('cancelled', onCancel);
    };
    const onDrain = (): void => (done(), resolve());
    const onCancel = (): void => (done(), reject(new Error('call cancelled')));
    call.on('drain', onDrain);
    call.on('cancelled', onCancel);
  });
}

/** A client-streaming handler from an async function; a throw becomes the call's status. */
export function clientStream<Req, Res>(
  log: Logger,
  method: string,
  fn: (call: ServerReadableStream<Req, Res>) => Promise<Res>,
): handleClientStreamingCall<Req, Res> {
  return (call, callback: sendUnaryData<Res>) => answer(log, method, () => fn(call), callback);
}

/** How many client messages wait unread before the call is paused (backpressure to the sender). */
const HIGH_WATER = 8;

/**
 * Pull-style reading of a client stream: `next()` resolves with the next message, undefined
 * at the client's half-close, and rejects when the client cancels or the stream fails. The
 * call is paused while messages pile up, so a fast uploader waits for the disk.
 */
export class CallReader<T> {
  private readonly queue: T[] = [];
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly call: ServerReadableStream<T, unknown>) {
    call.on('data', (m: T) => {
      this.queue.push(m);
      if (this.queue.length >= HIGH_WATER) call.pause();
      this.notify();
    });
    call.on('end', () => ((this.ended = true), this.notify()));
    call.on('error', (e: Error) => ((this.failure ??= e), this.notify()));
    call.on('cancelled', () => ((this.failure ??= new Error('the client cancelled the call')), this.notify()));
  }

  async next(): Promise<T | undefined> {
    for (;;) {
      if (this.failure) throw this.failure;
      const m = this.queue.shift();
      if (m !== undefined) {
        if (this.queue.length < HIGH_WATER) this.call.resume();
        return m;
      }
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
