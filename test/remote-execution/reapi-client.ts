import * as grpc from '@grpc/grpc-js';
import { CasClient, digestOf, type Digest } from '../../src/cas';
import { reapiProtos, type Action, type Command, type Directory, type ExecuteResponse__Output, type ExecutionClient, type Operation__Output } from '../../src/remote-execution';

export const wire = (d: Digest) => ({ hash: d.hash, sizeBytes: d.size });

/** What one Execute or WaitExecution stream said: the stages in order, the final response, the gRPC status. */
export interface Streamed {
  name: string | undefined;
  stages: string[];
  /** The type_url of every Any received (metadata, then the response): what a real client checks. */
  typeUrls: string[];
  response: ExecuteResponse__Output | undefined;
  status: grpc.StatusObject;
  /** google.rpc.Status details of a failed call, decoded from grpc-status-details-bin. */
  errorDetails: Buffer | undefined;
}

/** A REAPI client for tests: uploads over the HTTP cache, Execute and WaitExecution over gRPC. */
export class ReapiClient {
  readonly execution: ExecutionClient;
  readonly cas: CasClient;

  constructor(grpcUrl: string, casUrl: string, private readonly token: string | undefined) {
    const v2 = reapiProtos().grpc.build.bazel.remote.execution.v2;
    this.execution = new v2.Execution(grpcUrl.replace(/^grpc:\/\//, ''), grpc.credentials.createInsecure());
    this.cas = new CasClient({ baseUrl: casUrl, ...(token && { token }) });
  }

  close(): void {
    this.execution.close();
  }

  async put(data: Buffer | string): Promise<Digest> {
    const buf = Buffer.from(data);
    const digest = digestOf(buf);
    if (buf.length > 0) await this.cas.uploadMissing([{ digest, data: buf }]);
    return digest;
  }

  directory = (d: Directory): Promise<Digest> => this.put(reapiProtos().directory.encode(d));

  /** Uploads a Command and its Action (input root given); returns the action digest. */
  async action(command: Command, inputRoot: Digest, over: Partial<Action> = {}): Promise<Digest> {
    const c = await this.put(reapiProtos().command.encode(command));
    return this.put(reapiProtos().action.encode({ commandDigest: wire(c), inputRootDigest: wire(inputRoot), ...over }));
  }

  /** `null`: no authorization at all. */
  metadata(token: string | null | undefined = this.token): grpc.Metadata {
    const md = new grpc.Metadata();
    if (typeof token === 'string') md.set('authorization', `Bearer ${token}`);
    return md;
  }

  execute(actionDigest: Digest | { hash: string; sizeBytes: number }, o: { skipCacheLookup?: boolean; instanceName?: string; token?: string | null; until?: (stage: string) => boolean } = {}): Promise<Streamed> {
    const d = 'size' in actionDigest ? wire(actionDigest) : actionDigest;
    const call = this.execution.execute(
      { actionDigest: d, skipCacheLookup: o.skipCacheLookup ?? false, instanceName: o.instanceName ?? '' },
      'token' in o ? this.metadata(o.token) : this.metadata(),
    );
    return collect(call, o.until);
  }

  wait(name: string, token?: string | null): Promise<Streamed> {
    return collect(this.execution.waitExecution({ name }, this.metadata(token ?? this.token)));
  }
}

/** Reads a stream to its end, or cancels it once `until` holds for a stage (a client that goes away). */
function collect(call: grpc.ClientReadableStream<Operation__Output>, until?: (stage: string) => boolean): Promise<Streamed> {
  const codecs = reapiProtos();
  const out: Streamed = { name: undefined, stages: [], typeUrls: [], response: undefined, status: { code: 0, details: '', metadata: new grpc.Metadata() }, errorDetails: undefined };
  return new Promise((resolve) => {
    call.on('data', (op: Operation__Output) => {
      out.name = op.name;
      if (op.metadata) out.typeUrls.push(op.metadata.type_url);
      if (op.response) out.typeUrls.push(op.response.type_url);
      if (op.metadata) out.stages.push(codecs.executeOperationMetadata.decode(op.metadata.value).stage);
      if (op.done && op.response) out.response = codecs.executeResponse.decode(op.response.value);
      if (until && until(out.stages[out.stages.length - 1] ?? '')) call.cancel();
    });
    call.on('error', () => undefined);
    call.on('status', (s: grpc.StatusObject) => {
      out.status = s;
      const bin = s.metadata.get('grpc-status-details-bin')[0];
      if (bin) out.errorDetails = Buffer.from(bin as Buffer);
      resolve(out);
    });
  });
}
