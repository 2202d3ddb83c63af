import { randomUUID } from 'node:crypto';
import type { ServerWritableStream } from '@grpc/grpc-js';
import { EMPTY_DIGEST, type ActionCache, type BlobStore, type Digest } from '../cas';
import type { Config } from '../config';
import { BadRequestError, type Clock, type Logger } from '../lib';
import type { BuildRecord, MasterView } from '../master';
import { actionJob, type Violation } from './action-job';
import { readBlob } from './blob-read';
import type { CallAuth } from './call-auth';
import { cachedResult } from './cached-result';
import type { CompleteResults } from './complete-results';
import { executeOutcome } from './execute-result';
import { serverStream, send } from './grpc-handlers';
import { missingInputs } from './input-check';
import { OPERATION_NAME, type OperationRecord, type OperationStore } from './operation-store';
import { reapiProtos } from './reapi-protos';
import { traceExecute } from './reapi-trace';
import type { ReapiService } from './reapi-server';
import { requestDigest, requestInstance, requireSha256, wireDigest } from './request-digest';
import { Code, RpcError } from './rpc-error';
import type { ExecuteRequest__Output, ExecuteResponse, Operation, WaitExecutionRequest__Output } from './reapi-types';

/** What the Execution service needs; the master is reached through its public view only. */
export interface ExecutionServiceDeps {
  config: Config;
  master: Pick<MasterView, 'jobs' | 'on' | 'off'>;
  store: BlobStore;
  actionCache: ActionCache;
  /** The completeness checks GetActionResult remembers, for the cache lookup. */
  completeResults: CompleteResults;
  operations: OperationStore;
  auth: CallAuth;
  clock: Clock;
  log: Logger;
  /** How often a waiting stream looks at Redis itself, for a job another master settles. @defaultValue 1000 */
  pollMs?: number;
}

type Stage = 'QUEUED' | 'EXECUTING' | 'COMPLETED';
type OperationCall = ServerWritableStream<unknown, Operation>;

/** An Any; grpc-js's serializer and the protobufjs codecs both want the field spelled type_url (a typeUrl is dropped silently). */
const any = (typeUrl: string, value: Buffer) => ({ type_url: typeUrl, value });

/**
 * Execution.Execute and WaitExecution. An Execute is answered from the action cache when it
 * can be (COMPLETED, cached_result), else checked (Action and Command readable, every input
 * blob present) and submitted as a job of the instance's job type: the operation's name is
 * the job's id. The stream then says QUEUED, EXECUTING once an agent has the build, and
 * COMPLETED with the ExecuteResponse, which is kept in Redis so a WaitExecution (after a
 * disconnect, from another master, after a restart) gets the same one.
 */
export function executionService(deps: ExecutionServiceDeps): ReapiService {
  const { log } = deps;
  const v2 = reapiProtos().grpc.build.bazel.remote.execution.v2;
  const followers = new Followers(deps.master);
  return {
    definition: v2.Execution.service,
    implementation: {
      Execute: serverStream(log, 'Execute', (call: ServerWritableStream<ExecuteRequest__Output, Operation>) => execute(deps, followers, call)),
      WaitExecution: serverStream(log, 'WaitExecution', (call: ServerWritableStream<WaitExecutionRequest__Output, Operation>) => waitExecution(deps, followers, call)),
    },
  };
}

/** The streams following each operation, behind one pair of master listeners (not two per stream). */
class Followers {
  private readonly byName = new Map<string, Set<Follower>>();

  constructor(master: ExecutionServiceDeps['master']) {
    master.on('build-dispatched', (b) => {
      const set = this.byName.get(b.id);
      if (!set) return;
      traceExecute(b.id, 'dispatched');
      set.forEach((f) => f.advance('EXECUTING'));
    });
    master.on('job-settled', (_q, id) => this.byName.get(id)?.forEach((f) => f.nudge()));
  }

  add(name: string, f: Follower): void {
    let set = this.byName.get(name);
    if (!set) this.byName.set(name, (set = new Set()));
    set.add(f);
  }

  remove(name: string, f: Follower): void {
    const set = this.byName.get(name);
    set?.delete(f);
    if (set?.size === 0) this.byName.delete(name);
  }
}

async function execute(deps: ExecutionServiceDeps, followers: Followers, call: ServerWritableStream<ExecuteRequest__Output, Operation>): Promise<void> {
  // Running work writes results: the cache's read-write tokens, as for UpdateActionResult.
  deps.auth.require(call.metadata, 'read-write');
  const req = call.request;
  const instance = requestInstance(req.instanceName);
  requireSha256(req.digestFunction);
  const actionDigest = requestDigest(req.actionDigest, 'action_digest');
  const name = `ra-${randomUUID()}`;
  traceExecute(name, 'received');
  const finish = (response: ExecuteResponse) => send(call, operation(name, 'COMPLETED', actionDigest, response));

  if (!req.skipCacheLookup) {
    const hit = await cachedResult(deps.store, deps.actionCache, deps.completeResults, actionDigest);
    if (hit) {
      deps.log.info('execution.cache-hit', { action: actionDigest.hash, instance });
      return finish({ result: hit, cachedResult: true, status: { code: Code.OK } });
    }
    traceExecute(name, 'cache-checked');
  }
  const [actionBytes, missingAction] = await blobOrMissing(deps.store, actionDigest);
  if (!actionBytes) return finish(preconditionFailed(missingAction));
  const action = decodeOr(() => reapiProtos().action.decode(actionBytes), 'action_digest: the blob is not an Action');
  traceExecute(name, 'action-read');
  const commandDigest = requestDigest(action.commandDigest, 'action.command_digest');
  const [commandBytes, missingCommand] = await blobOrMissing(deps.store, commandDigest);
  if (!commandBytes) return finish(preconditionFailed(missingCommand));
  const command = decodeOr(() => reapiProtos().command.decode(commandBytes), 'action.command_digest: the blob is not a Command');
  traceExecute(name, 'command-read');
  if (action.inputRootDigest) requestDigest(action.inputRootDigest, 'action.input_root_digest');

  const job = actionJob(deps.config, instance, wireDigest(actionDigest), action, command);
  if (!job.ok) throw badRequest(job.violations);
  traceExecute(name, 'job-built');
  const inputRoot = job.payload.remoteAction!.inputRoot;
  const missing = await missingInputs(deps.store, inputRoot);
  if (missing.length > 0) return finish(preconditionFailed(missing));
  traceExecute(name, 'inputs-checked');

  const rec: OperationRecord = { type: job.type, action: job.payload.remoteAction!, doNotCache: job.doNotCache, submittedAt: deps.clock.now() };
  // Subscribed before the job exists, so its dispatch cannot slip past. The record and the job
  // go to Redis side by side (two connections, one round trip instead of two before the
  // dispatcher can take it); the stream names the operation only once the record is stored,
  // so a WaitExecution with that name finds it, and says QUEUED before EXECUTING whichever
  // arrives first. A job whose record could not be stored runs unfollowed, as after a disconnect.
  const follower = new Follower(deps, followers, call, name, rec, false);
  const [stored, submitted] = await Promise.allSettled([
    deps.operations.create(name, rec).then(() => {
      traceExecute(name, 'operation-stored');
      follower.announce();
    }),
    // The job type's attempts: a build lost with its agent runs again elsewhere (a failing command never does).
    deps.master.jobs.submitFresh(job.type, name, job.payload).then(() => traceExecute(name, 'enqueued')),
  ]);
  const failed = [submitted, stored].find((r) => r.status === 'rejected');
  if (failed) {
    follower.close();
    const err: unknown = failed.reason;
    if (err instanceof BadRequestError) throw new RpcError(Code.INVALID_ARGUMENT, err.message);
    throw err;
  }
  deps.log.info('execution.submitted', { operation: name, type: job.type, action: actionDigest.hash, instance });
  await follower.run(undefined);
}

async function waitExecution(deps: ExecutionServiceDeps, followers: Followers, call: ServerWritableStream<WaitExecutionRequest__Output, Operation>): Promise<void> {
  deps.auth.require(call.metadata, 'read-write');
  const name = call.request.name;
  const rec = OPERATION_NAME.test(name) ? await deps.operations.get(name) : undefined;
  if (!rec) throw new RpcError(Code.NOT_FOUND, `no operation ${name.slice(0, 80)} (unknown, or finished over ${deps.config.remoteExecution.operationTtlSec} s ago)`);
  await new Follower(deps, followers, call, name, rec, true).run(undefined);
}

/**
 * Follows one operation for one stream: the master's events move it on at once, and a poll
 * of Redis catches what another master (or this one, before a restart) did. The stream gets
 * the ExecuteResponse once and ends; a stream the client drops leaves the job running.
 */
class Follower {
  private stage: Stage | undefined;
  /** A stage reached before the operation was announced, sent right after QUEUED. */
  private deferred: Stage | undefined;
  private wake: (() => void) | undefined;
  private closed = false;
  private readonly abort = new AbortController();

  constructor(
    private readonly deps: ExecutionServiceDeps,
    private readonly followers: Followers,
    private readonly call: OperationCall,
    private readonly name: string,
    private readonly rec: OperationRecord,
    /** False until {@link announce}: no stage is sent before the operation's record is stored. */
    private announced: boolean,
  ) {
    followers.add(name, this);
    call.on('cancelled', () => this.close());
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.followers.remove(this.name, this);
    this.abort.abort();
    this.nudge();
  }

  async run(first: Stage | undefined): Promise<void> {
    try {
      if (first) this.advance(first);
      const pollMs = this.deps.pollMs ?? 1000;
      while (!this.closed) {
        const response = await this.response();
        if (response) {
          await send(this.call, operation(this.name, 'COMPLETED', this.rec.action.actionDigest, response));
          return;
        }
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          this.deps.clock.sleep(pollMs, this.abort.signal).then(resolve, resolve);
        });
      }
    } finally {
      this.close();
    }
  }

  nudge(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** The record is stored: QUEUED goes out, then whatever the operation reached meanwhile. */
  announce(): void {
    this.announced = true;
    this.advance('QUEUED');
    if (this.deferred) this.advance(this.deferred);
    this.deferred = undefined;
  }

  advance(stage: Stage): void {
    if (!this.announced) {
      if (stage !== 'QUEUED') this.deferred = stage;
      return;
    }
    if (this.closed || this.stage === stage || (this.stage === 'EXECUTING' && stage === 'QUEUED')) return;
    this.stage = stage;
    send(this.call, operation(this.name, stage, this.rec.action.actionDigest)).catch(() => this.close());
  }

  /** The stored response, or the one the settled job makes (stored first), or undefined while it runs. */
  private async response(): Promise<ExecuteResponse | undefined> {
    const stored = await this.deps.operations.response(this.name);
    if (stored) return reapiProtos().executeResponse.decode(stored) as ExecuteResponse;
    let view;
    try {
      view = await this.deps.master.jobs.view(this.name, this.rec.type, false);
    } catch (err) {
      if ((err as { code?: string }).code === 'SPILLWAY_E_NOT_FOUND') {
        return { status: { code: Code.NOT_FOUND, message: `the job of operation ${this.name} no longer exists` } };
      }
      throw err;
    }
    if (view.state === 'active' && this.stage !== 'EXECUTING') this.advance('EXECUTING');
    if (!view.done) return undefined;
    const last = [...view.builds].reverse().find((b: BuildRecord) => b.state === 'finished');
    const outcome = last
      ? await executeOutcome(last, this.rec, this.deps.store, this.deps.actionCache)
      : { response: { status: { code: Code.INTERNAL, message: view.failedReason ?? 'the job ended without a build' } }, cached: false };
    const bytes = await this.deps.operations.settle(this.name, reapiProtos().executeResponse.encode(outcome.response));
    this.deps.log.info('execution.completed', {
      operation: this.name,
      action: this.rec.action.actionDigest.hash,
      agent: last?.agent,
      exitCode: outcome.response.result?.exitCode,
      status: outcome.response.status?.code,
      cached: outcome.cached,
    });
    return reapiProtos().executeResponse.decode(bytes) as ExecuteResponse;
  }
}

function operation(name: string, stage: Stage, actionDigest: Digest, response?: ExecuteResponse): Operation {
  const codecs = reapiProtos();
  const metadata = any(codecs.executeOperationMetadata.typeUrl, codecs.executeOperationMetadata.encode({ stage, actionDigest: wireDigest(actionDigest) }));
  if (!response) return { name, done: false, metadata };
  return { name, done: true, metadata, response: any(codecs.executeResponse.typeUrl, codecs.executeResponse.encode(response)) };
}

async function blobOrMissing(store: BlobStore, digest: Digest): Promise<[Buffer, []] | [undefined, Digest[]]> {
  // An empty Command is no command, but the empty blob is never stored: it always "exists".
  const bytes = digest.size === 0 && digest.hash === EMPTY_DIGEST.hash ? Buffer.alloc(0) : await readBlob(store, digest);
  return bytes ? [bytes, []] : [undefined, [digest]];
}

function decodeOr<T>(decode: () => T, message: string): T {
  try {
    return decode();
  } catch {
    throw new RpcError(Code.INVALID_ARGUMENT, message);
  }
}

/** FAILED_PRECONDITION naming every missing blob as REAPI asks (type MISSING, subject blobs/{hash}/{size}). */
function preconditionFailed(missing: readonly Digest[]): ExecuteResponse {
  const codecs = reapiProtos();
  const violations = missing.map((d) => ({ type: 'MISSING', subject: `blobs/${d.hash}/${d.size}`, description: 'not in the CAS' }));
  const shown = missing.slice(0, 3).map((d) => `${d.hash}/${d.size}`);
  return {
    status: {
      code: Code.FAILED_PRECONDITION,
      message: `${missing.length} blob(s) missing from the CAS: ${shown.join(', ')}${missing.length > 3 ? ', ...' : ''}`,
      details: [any(codecs.preconditionFailure.typeUrl, codecs.preconditionFailure.encode({ violations }))],
    },
  };
}

function badRequest(violations: Violation[]): RpcError {
  const codecs = reapiProtos();
  const message = violations.map((v) => `${v.field}: ${v.description}`).join('; ');
  return new RpcError(Code.INVALID_ARGUMENT, message, [{ typeUrl: codecs.badRequest.typeUrl, value: codecs.badRequest.encode({ fieldViolations: violations }) }]);
}

