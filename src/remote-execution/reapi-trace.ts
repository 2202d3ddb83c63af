import { channel } from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';

/**
 * Where the REAPI services publish their timings, for benchmarks and profilers: Node's
 * diagnostics channels cost one branch while nobody subscribes, so the hot paths carry them
 * always instead of a build with instrumentation compiled in. Subscribers get plain objects
 * and must not throw (a throw is reported by Node on the next tick, never to the caller).
 */
export const RPC_TRACE_CHANNEL = 'spillway:reapi:rpc';
export const EXECUTE_TRACE_CHANNEL = 'spillway:reapi:execute';

/** One finished RPC as the server saw it: from the handler's start to its status. */
export interface RpcTrace {
  /** `GetActionResult`, `Execute`, ... */
  method: string;
  /** The gRPC status code sent (0 for OK). */
  code: number;
  ms: number;
}

/**
 * The steps of an Execute, in order, each published when it is done: the cache lookup, the
 * Action and Command read from the CAS, the job payload built from them, the input tree found
 * complete, the operation record written, the job in its queue, and the build dispatched
 * to an agent (the moment the stream says EXECUTING).
 */
export type ExecuteStage = 'received' | 'cache-checked' | 'action-read' | 'command-read' | 'job-built' | 'inputs-checked' | 'operation-stored' | 'enqueued' | 'dispatched';

export interface ExecuteTrace {
  operation: string;
  stage: ExecuteStage;
  /** performance.now() of this process. */
  at: number;
}

const rpcChannel = channel(RPC_TRACE_CHANNEL);
const executeChannel = channel(EXECUTE_TRACE_CHANNEL);

/** A start time for {@link traceRpc}, or undefined while nobody listens (no clock read). */
export function rpcStart(): number | undefined {
  return rpcChannel.hasSubscribers ? performance.now() : undefined;
}

export function traceRpc(method: string, code: number, start: number | undefined): void {
  if (start === undefined || !rpcChannel.hasSubscribers) return;
  const t: RpcTrace = { method, code, ms: performance.now() - start };
  rpcChannel.publish(t);
}

export function traceExecute(operation: string, stage: ExecuteStage): void {
  if (!executeChannel.hasSubscribers) return;
  const t: ExecuteTrace = { operation, stage, at: performance.now() };
  executeChannel.publish(t);
}
