/**
 * Server-side breakdowns for bench/remote: what the master's REAPI services publish on their
 * diagnostics channels (per-RPC latency, the stages of each Execute), and the HTTP requests
 * the same master served (Node's own `http.server.*` channels), so a cached build over gRPC
 * and over HTTP can be compared request by request.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { EXECUTE_TRACE_CHANNEL, RPC_TRACE_CHANNEL, type ExecuteStage, type ExecuteTrace, type RpcTrace } from '../src/remote-execution';
import { f1, f2, stats } from './harness';

/** Requests served while recording, by RPC method or by HTTP method and route (`GET /cache/ac`). */
export class RequestTally {
  private readonly byKey = new Map<string, { ms: number[]; failed: number }>();
  private readonly started = new WeakMap<IncomingMessage, number>();
  private readonly onRpc = (m: unknown): void => {
    const t = m as RpcTrace;
    this.add(`gRPC ${t.method}`, t.ms, t.code !== 0);
  };
  private readonly onHttpStart = (m: unknown): void => {
    this.started.set((m as { request: IncomingMessage }).request, performance.now());
  };
  private readonly onHttpFinish = (m: unknown): void => {
    const { request, response } = m as { request: IncomingMessage; response: { statusCode: number } };
    const t0 = this.started.get(request);
    if (t0 === undefined) return;
    const route = (request.url ?? '').split('/').slice(0, 3).join('/');
    this.add(`HTTP ${request.method} ${route}`, performance.now() - t0, response.statusCode >= 400);
  };

  start(): void {
    this.byKey.clear();
    subscribe(RPC_TRACE_CHANNEL, this.onRpc);
    subscribe('http.server.request.start', this.onHttpStart);
    subscribe('http.server.response.finish', this.onHttpFinish);
  }

  stop(): void {
    unsubscribe(RPC_TRACE_CHANNEL, this.onRpc);
    unsubscribe('http.server.request.start', this.onHttpStart);
    unsubscribe('http.server.response.finish', this.onHttpFinish);
  }

  /** One line per request kind: count, failures (NOT_FOUND, 404...), p50 / p90 and the sum of server-side ms. */
  lines(): string[] {
    return [...this.byKey.entries()].map(([k, v]) => {
      const s = stats(v.ms);
      const sum = v.ms.reduce((a, b) => a + b, 0);
      return `${k.padEnd(34)} n ${String(s.n).padStart(4)}  failed ${String(v.failed).padStart(4)}  p50 ${f2(s.p50).padStart(6)} ms  p90 ${f2(s.p90).padStart(6)} ms  sum ${f1(sum).padStart(7)} ms`;
    });
  }

  private add(key: string, ms: number, failed: boolean): void {
    let e = this.byKey.get(key);
    if (!e) this.byKey.set(key, (e = { ms: [], failed: 0 }));
    e.ms.push(ms);
    if (failed) e.failed++;
  }
}

const STAGES: readonly ExecuteStage[] = ['received', 'cache-checked', 'action-read', 'command-read', 'job-built', 'inputs-checked', 'operation-stored', 'enqueued', 'dispatched'];

/** The stages of every Execute while recording, by operation name. */
export class ExecuteStages {
  private readonly byOp = new Map<string, Partial<Record<ExecuteStage, number>>>();
  private readonly onTrace = (m: unknown): void => {
    const t = m as ExecuteTrace;
    let op = this.byOp.get(t.operation);
    if (!op) this.byOp.set(t.operation, (op = {}));
    op[t.stage] ??= t.at;
  };

  start(): void {
    subscribe(EXECUTE_TRACE_CHANNEL, this.onTrace);
  }

  stop(): void {
    unsubscribe(EXECUTE_TRACE_CHANNEL, this.onTrace);
  }

  /** The `received` time of each operation, oldest first (to pair with the client's samples). */
  receivedTimes(): number[] {
    return [...this.byOp.values()].map((o) => o.received ?? NaN);
  }

  /**
   * p50 / p90 of each stage's ms since `received` (the stages that happened: a skipped cache
   * lookup has none). The operation record and the job are written side by side, and the
   * dispatcher may take the job before the add's reply is read, so the last three overlap.
   */
  lines(skip = 0): string[] {
    const ops = [...this.byOp.values()].slice(skip);
    const out: string[] = [];
    for (const stage of STAGES.slice(1)) {
      const s = stats(ops.map((o) => (o[stage] ?? NaN) - (o.received ?? NaN)));
      if (s.n > 0) out.push(`${stage.padEnd(18)} p50 ${f2(s.p50).padStart(6)} ms  p90 ${f2(s.p90).padStart(6)} ms  (n ${s.n})`);
    }
    return out;
  }

  /** The `dispatched` time of each operation, oldest first. */
  dispatchedTimes(): number[] {
    return [...this.byOp.values()].map((o) => o.dispatched ?? NaN);
  }
}
