import * as grpc from '@grpc/grpc-js';
import { digestOf, type Digest } from '../cas';
import {
  reapiProtos,
  type BatchReadBlobsResponse__Output,
  type BatchUpdateBlobsResponse__Output,
  type ContentAddressableStorageClient,
  type FindMissingBlobsResponse__Output,
  type ExecuteResponse__Output,
  type ExecutionClient,
  type Operation__Output,
} from '../remote-execution';
import { actionNames, actionScript, DEMO_INPUT, type DemoActions } from './demo-actions';

/** How one Execute of the burst ended, as the client saw it. */
export interface BurstOutcome {
  action: string;
  /** The operation's name (the job id on the master); undefined if the stream said none. */
  operation: string | undefined;
  cached: boolean;
  exitCode: number | null;
  /** ExecutedActionMetadata.worker: the agent that ran it. */
  worker: string;
  /** The output file's bytes, read back from the CAS; undefined when there is none. */
  output: string | undefined;
  /** A gRPC or operation status that was not OK, in words. */
  error: string | undefined;
}

interface Prepared {
  action: string;
  digest: Digest;
}

const wire = (d: Digest) => ({ hash: d.hash, sizeBytes: d.size });

/**
 * The remote demo without Bazel: a REAPI client that does what Bazel does for a burst of
 * genrules, over gRPC only: FindMissingBlobs and BatchUpdateBlobs for the input, the input
 * root, the Commands and the Actions, then every Execute at once (Bazel with a high `--jobs`),
 * then BatchReadBlobs for the outputs.
 */
export class ReapiBurst {
  private readonly cas: ContentAddressableStorageClient;
  private readonly execution: ExecutionClient;
  private readonly prepared: Prepared[] = [];

  constructor(
    grpcUrl: string,
    private readonly token: string,
    private readonly actions: DemoActions,
  ) {
    const v2 = reapiProtos().grpc.build.bazel.remote.execution.v2;
    const target = grpcUrl.replace(/^grpc:\/\//, '');
    this.cas = new v2.ContentAddressableStorage(target, grpc.credentials.createInsecure());
    this.execution = new v2.Execution(target, grpc.credentials.createInsecure());
  }

  close(): void {
    this.cas.close();
    this.execution.close();
  }

  /** Uploads what the actions need; returns how many blobs the CAS lacked. */
  async upload(): Promise<number> {
    const codecs = reapiProtos();
    const blobs = new Map<string, Buffer>();
    const put = (data: Buffer): Digest => {
      const d = digestOf(data);
      blobs.set(d.hash, data);
      return d;
    };
    const input = put(Buffer.from(DEMO_INPUT.text));
    const root = put(codecs.directory.encode({ files: [{ name: DEMO_INPUT.name, digest: wire(input), isExecutable: false }] }));
    this.prepared.length = 0;
    for (const action of actionNames(this.actions)) {
      const output = `out/${action}.txt`;
      const command = put(codecs.command.encode({ arguments: ['/bin/sh', '-c', actionScript(this.actions, action, DEMO_INPUT.name, output)], outputFiles: [output] }));
      const digest = put(codecs.action.encode({ commandDigest: wire(command), inputRootDigest: wire(root), timeout: { seconds: 120 } }));
      this.prepared.push({ action, digest });
    }
    const all = [...blobs.values()].map((data) => digestOf(data));
    const missing = (await this.call<FindMissingBlobsResponse__Output>((md, cb) => this.cas.findMissingBlobs({ blobDigests: all.map(wire) }, md, cb))).missingBlobDigests;
    if (missing.length === 0) return 0;
    const requests = missing.map((d) => ({ digest: d, data: blobs.get(d.hash)! }));
    const stored = await this.call<BatchUpdateBlobsResponse__Output>((md, cb) => this.cas.batchUpdateBlobs({ requests }, md, cb));
    const refused = stored.responses.filter((r) => (r.status?.code ?? 0) !== 0);
    if (refused.length > 0) throw new Error(`BatchUpdateBlobs refused ${refused.length} blob(s): ${refused[0]!.status?.message ?? ''}`);
    return missing.length;
  }

  /** Every Execute at once; `onQueued` hears each operation's name as its stream says it. */
  async executeAll(onQueued: (action: string, operation: string) => void = () => undefined): Promise<BurstOutcome[]> {
    const responses = await Promise.all(this.prepared.map((p) => this.execute(p, onQueued)));
    const outputs = await this.readOutputs(responses.map((r) => r.response));
    return responses.map(({ outcome }, i) => ({ ...outcome, output: outputs[i] }));
  }

  private execute(p: Prepared, onQueued: (action: string, operation: string) => void): Promise<{ outcome: Omit<BurstOutcome, 'output'>; response: ExecuteResponse__Output | undefined }> {
    const codecs = reapiProtos();
    const call = this.execution.execute({ actionDigest: wire(p.digest), instanceName: '' }, this.metadata());
    let operation: string | undefined;
    let response: ExecuteResponse__Output | undefined;
    let error: string | undefined;
    return new Promise((resolve) => {
      call.on('data', (op: Operation__Output) => {
        if (operation === undefined && op.name) onQueued(p.action, op.name);
        operation = op.name;
        if (op.done && op.response) response = codecs.executeResponse.decode(op.response.value);
        if (op.done && op.error) error = `operation failed: ${op.error.message}`;
      });
      call.on('error', (err: Error) => (error = err.message));
      call.on('end', () => undefined);
      call.on('status', (s: grpc.StatusObject) => {
        if (s.code !== grpc.status.OK) error ??= `${grpc.status[s.code]}: ${s.details}`;
        const status = response?.status;
        if (status && status.code !== 0) error ??= `status ${status.code}: ${status.message}`;
        resolve({
          outcome: {
            action: p.action,
            operation,
            cached: response?.cachedResult ?? false,
            exitCode: response?.result ? response.result.exitCode : null,
            worker: response?.result?.executionMetadata?.worker ?? '',
            error: error ?? (response ? undefined : 'the stream ended without a response'),
          },
          response,
        });
      });
    });
  }

  private async readOutputs(responses: ReadonlyArray<ExecuteResponse__Output | undefined>): Promise<Array<string | undefined>> {
    const digests = responses.map((r) => r?.result?.outputFiles[0]?.digest ?? null);
    const wanted = digests.filter((d): d is NonNullable<typeof d> => d !== null);
    if (wanted.length === 0) return digests.map(() => undefined);
    const read = await this.call<BatchReadBlobsResponse__Output>((md, cb) => this.cas.batchReadBlobs({ digests: wanted }, md, cb));
    const byHash = new Map(read.responses.filter((r) => (r.status?.code ?? 0) === 0 && r.digest).map((r) => [r.digest!.hash, r.data.toString()]));
    return digests.map((d) => (d ? byHash.get(d.hash) : undefined));
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${this.token}`);
    return md;
  }

  private call<Res>(invoke: (md: grpc.Metadata, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall): Promise<Res> {
    return new Promise((resolve, reject) => {
      invoke(this.metadata(), (err, res) => (err || !res ? reject(err ?? new Error('no response')) : resolve(res)));
    });
  }
}
