/**
 * Times Execute calls as a REAPI client sees them: ms to the operation's EXECUTING stage (an
 * agent has the build) and to COMPLETED. bench/remote runs it in this process and as a child
 * process of its own (`node remote-execute-client.js GRPC_URL TOKEN DIGESTS_JSON`, printing
 * the samples as JSON), since Bazel is never in the master's process: in-process, the client's
 * own encoding and HTTP/2 work runs on the master's event loop too.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import type { Digest } from '../src/cas';
import { reapiProtos, type Operation__Output } from '../src/remote-execution';

export type ExecutionClient = InstanceType<ReturnType<typeof reapiProtos>['grpc']['build']['bazel']['remote']['execution']['v2']['Execution']>;

/** One Execute: `sentAt` in epoch ms (comparable across processes), the rest in ms after it. */
export interface ExecuteSample {
  sentAt: number;
  started: number;
  completed: number;
}

export function executionClient(url: string): ExecutionClient {
  const v2 = reapiProtos().grpc.build.bazel.remote.execution.v2;
  return new v2.Execution(url.replace('grpc://', ''), grpc.credentials.createInsecure());
}

export function timeExecute(execution: ExecutionClient, token: string, action: Digest): Promise<ExecuteSample> {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  const t0 = performance.now();
  const out = { sentAt: performance.timeOrigin + t0, started: NaN, completed: NaN };
  const call = execution.execute({ actionDigest: { hash: action.hash, sizeBytes: action.size }, skipCacheLookup: true }, md);
  return new Promise((resolve, reject) => {
    call.on('data', (op: Operation__Output) => {
      const stage = op.metadata ? reapiProtos().executeOperationMetadata.decode(op.metadata.value).stage : '';
      if (stage === 'EXECUTING' && Number.isNaN(out.started)) out.started = performance.now() - t0;
      if (op.done) out.completed = performance.now() - t0;
    });
    call.on('error', reject);
    call.on('end', () => resolve(out));
  });
}

/** Each action in turn, one at a time. */
export async function timeAll(url: string, token: string, actions: readonly Digest[]): Promise<ExecuteSample[]> {
  const execution = executionClient(url);
  try {
    const samples: ExecuteSample[] = [];
    for (const a of actions) samples.push(await timeExecute(execution, token, a));
    return samples;
  } finally {
    execution.close();
  }
}

if (require.main === module) {
  const [url, token, file] = process.argv.slice(2);
  if (!url || !token || !file) throw new Error('usage: remote-execute-client GRPC_URL TOKEN DIGESTS_JSON');
  const actions = JSON.parse(readFileSync(file, 'utf8')) as Digest[];
  timeAll(url, token, actions).then(
    (samples) => process.stdout.write(JSON.stringify(samples)),
    (err: unknown) => {
      process.stderr.write(`${String(err)}\n`);
      process.exit(1);
    },
  );
}
