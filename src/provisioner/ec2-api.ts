/**
 * The only module that speaks the EC2 SDK: requests go out in EC2's shapes, and answers come
 * back as our domain `Machine`s and `ProviderError`s. Every call takes the caller's EC2Client
 * (one per region, created by the composition root) and an AbortSignal that reaches `send()`.
 */
import {
  DescribeInstancesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeSubnetsCommand,
  EC2Client,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  type Filter,
  type Instance,
  type RunInstancesCommandInput,
  type Tag,
  type _InstanceType,
} from '@aws-sdk/client-ec2';
import { createHash } from 'node:crypto';
import type { PoolConfig } from '../config';
import type { Logger } from '../lib';
import { classifyEc2Error, toProviderError, type Ec2Retrier } from './ec2-errors';
import type { Ec2RequestBucket } from './ec2-request-bucket';
import { suspendOutcomes } from './ec2-state-change';
import { ProviderError, type Machine, type MachineState, type SuspendOutcome } from './provider';

/** The SDK's client, named here so no other module imports the SDK. */
export type Ec2Client = EC2Client;

/** The `ec2` section of a pool's configuration. */
export type Ec2PoolConfig = NonNullable<PoolConfig['ec2']>;

/** The tag that says which pool an instance belongs to; `list()` finds instances by it. */
const POOL_TAG = 'spillway:pool';

/** Every instance state except `terminated`: what a pool still has to account for. */
const LIVE_INSTANCE_STATES: readonly MachineState[] = ['pending', 'running', 'stopping', 'stopped', 'shutting-down'];

/** DescribeInstances page size (EC2 allows 5–1000; it cannot be combined with `InstanceIds`). */
const PAGE_SIZE = 100;

/**
 * Most instance ids per Start/Stop/TerminateInstances request. TerminateInstances documents
 * "Up to 1000 instance IDs" (InstanceIds, API reference); Start/StopInstances take the same
 * list and name no other bound, so one tick's ids for a pool go out in chunks of this.
 */
export const MAX_IDS_PER_CALL = 1000;

/** Actions that count against EC2's mutating-request bucket (Describe* do not). */
const MUTATING = new Set(['StartInstances', 'StopInstances', 'TerminateInstances', 'RunInstances']);

/** What {@link createEc2Client} needs. */
export interface CreateEc2ClientOptions {
  region: string;
  /** A VPC interface endpoint for EC2, e.g. `https://vpce-….ec2.eu-west-1.vpce.amazonaws.com`. */
  endpoint?: string;
  /**
   * Tries the SDK itself makes per request. One, so that spillway's {@link Ec2Retrier} is the
   * only retry policy: with both, one throttled call became up to 10 requests while EC2 was
   * asking for fewer, and the SDK's tries were neither logged nor counted.
   * @defaultValue 1
   */
  maxAttempts?: number;
  /** @defaultValue 3000 */
  connectionTimeoutMs?: number;
  /** Socket idle timeout per request; the caller's AbortSignal bounds the whole call. @defaultValue 30000 */
  requestTimeoutMs?: number;
}

/**
 * An EC2 client for one region. Credentials come from the standard AWS chain (environment,
 * shared config/SSO, web identity, ECS/EC2 instance role).
 */
export function createEc2Client(options: CreateEc2ClientOptions): EC2Client {
  return new EC2Client({
    region: options.region,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    maxAttempts: options.maxAttempts ?? 1,
    retryMode: 'standard',
    requestHandler: {
      connectionTimeout: options.connectionTimeoutMs ?? 3000,
      requestTimeout: options.requestTimeoutMs ?? 30_000,
    },
  });
}

/** Optional helpers for every call: throttling retries, the region's request bucket, a logger for fallbacks. */
export interface Ec2CallOptions {
  /** Retries throttled/transient failures; without it every request is tried once. */
  retrier?: Ec2Retrier;
  /** Paces mutating requests (each try) for the client's account and region. */
  bucket?: Ec2RequestBucket;
  log?: Logger;
}

function attempt<T>(action: string, signal: AbortSignal, opts: Ec2CallOptions | undefined, fn: () => Promise<T>): Promise<T> {
  const bucket = MUTATING.has(action) ? opts?.bucket : undefined;
  const once = bucket ? () => bucket.take(signal).then(fn) : fn;
  return opts?.retrier ? opts.retrier.run(action, signal, once) : once();
}

function chunks<T>(items: readonly T[], size = MAX_IDS_PER_CALL): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Maps an EC2 instance to a Machine; `undefined` for a malformed entry.
 *
 * Hibernation: EC2 has no "is hibernated" flag, but a stop begun by a hibernating
 * StopInstances leaves `StateReason.Code = "Client.UserInitiatedHibernate"` on the instance
 * until it starts again (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_StateReason.html),
 * so no tag of our own is needed and instances hibernated by hand are recognised too.
 * `launchedAt` is EC2's LaunchTime, which for EBS-backed instances is the last start.
 */
function machineFromInstance(instance: Instance): Machine | undefined {
  const id = instance.InstanceId;
  const state = instance.State?.Name as MachineState | undefined;
  if (!id || !state) return undefined;
  const suspended = state === 'stopped' || state === 'stopping';
  return {
    id,
    state,
    privateIp: instance.PrivateIpAddress ?? null,
    spot: instance.InstanceLifecycle === 'spot',
    hibernated: suspended && instance.StateReason?.Code === 'Client.UserInitiatedHibernate',
    launchedAt: instance.LaunchTime ? instance.LaunchTime.getTime() : null,
    ...(instance.ClientToken ? { clientToken: instance.ClientToken } : {}),
  };
}

async function describeAll(client: EC2Client, filters: Filter[], signal: AbortSignal, opts?: Ec2CallOptions): Promise<Machine[]> {
  const machines: Machine[] = [];
  const seen = new Set<string>();
  let nextToken: string | undefined;
  do {
    const input = { Filters: filters, MaxResults: PAGE_SIZE, ...(nextToken ? { NextToken: nextToken } : {}) };
    const page = await attempt('DescribeInstances', signal, opts, () =>
      client.send(new DescribeInstancesCommand(input), { abortSignal: signal }),
    );
    for (const reservation of page.Reservations ?? []) {
      for (const instance of reservation.Instances ?? []) {
        const m = machineFromInstance(instance);
        if (m) machines.push(m);
      }
    }
    // A token seen before would loop forever; EC2 never does that, a broken proxy might.
    nextToken = page.NextToken && !seen.has(page.NextToken) ? page.NextToken : undefined;
    if (nextToken) seen.add(nextToken);
  } while (nextToken);
  return machines;
}

/** Every non-terminated instance tagged `spillway:pool = <pool>`, across all pages. */
export async function describePoolMachines(client: EC2Client, pool: string, signal: AbortSignal, opts?: Ec2CallOptions): Promise<Machine[]> {
  const filters: Filter[] = [
    { Name: `tag:${POOL_TAG}`, Values: [pool] },
    { Name: 'instance-state-name', Values: [...LIVE_INSTANCE_STATES] },
  ];
  try {
    return await describeAll(client, filters, signal, opts);
  } catch (err) {
    throw toProviderError(err, 'DescribeInstances', signal);
  }
}

/**
 * The named instances that still exist (any state). Uses an `instance-id` filter rather than
 * `InstanceIds`, so an id EC2 no longer knows is simply absent instead of failing the call.
 */
export async function describeMachines(client: EC2Client, ids: readonly string[], signal: AbortSignal, opts?: Ec2CallOptions): Promise<Machine[]> {
  if (ids.length === 0) return [];
  try {
    return await describeAll(client, [{ Name: 'instance-id', Values: [...ids] }], signal, opts);
  } catch (err) {
    throw toProviderError(err, 'DescribeInstances', signal);
  }
}

/** Starts stopped or hibernated instances. */
export async function startMachines(client: EC2Client, ids: readonly string[], signal: AbortSignal, opts?: Ec2CallOptions): Promise<void> {
  if (ids.length === 0) return;
  try {
    for (const batch of chunks(ids)) {
      await attempt('StartInstances', signal, opts, () => client.send(new StartInstancesCommand({ InstanceIds: batch }), { abortSignal: signal }));
    }
  } catch (err) {
    throw toProviderError(err, 'StartInstances', signal);
  }
}

/**
 * Stops instances, hibernating them when `hibernate` is set, and says per instance what EC2
 * did. EC2 refuses a hibernating stop for the whole request when any instance cannot
 * hibernate (not enabled at launch, not ready yet, a spot instance), and any other refusal of
 * it that retrying cannot fix is treated the same: the batch is then stopped plainly and each
 * outcome is `stopped`. Note a one-time spot instance cannot be stopped at all
 * (`UnsupportedOperation`, fatal).
 */
export async function stopMachines(
  client: EC2Client,
  ids: readonly string[],
  hibernate: boolean,
  signal: AbortSignal,
  opts?: Ec2CallOptions,
): Promise<SuspendOutcome[]> {
  const out: SuspendOutcome[] = [];
  for (const batch of chunks(ids)) out.push(...(await stopBatch(client, batch, hibernate, signal, opts)));
  return out;
}

async function stopBatch(client: EC2Client, ids: readonly string[], hibernate: boolean, signal: AbortSignal, opts?: Ec2CallOptions): Promise<SuspendOutcome[]> {
  let refused: string | null = null;
  try {
    if (hibernate) {
      try {
        const out = await attempt('StopInstances', signal, opts, () =>
          client.send(new StopInstancesCommand({ InstanceIds: [...ids], Hibernate: true }), { abortSignal: signal }),
        );
        return suspendOutcomes(ids, out.StoppingInstances, 'hibernated', 'StopInstances', null);
      } catch (err) {
        const c = classifyEc2Error(err, signal);
        if (c.disposition !== 'fatal' || c.kind === 'not-found') throw err;
        if (c.kind === 'hibernation-unsupported' && ids.length > 1) {
          // One instance that cannot hibernate refuses the whole request. Halving finds it in
          // about 2·log2(n) calls, and the others still hibernate instead of cold-booting later.
          const half = Math.ceil(ids.length / 2);
          return [...(await stopBatch(client, ids.slice(0, half), true, signal, opts)), ...(await stopBatch(client, ids.slice(half), true, signal, opts))];
        }
        opts?.log?.warn('ec2.hibernate-refused', { instances: ids, code: c.code, reason: c.message });
        refused = `hibernation refused (${c.code ?? 'error'}), stopped instead`;
      }
    }
    const out = await attempt('StopInstances', signal, opts, () =>
      client.send(new StopInstancesCommand({ InstanceIds: [...ids] }), { abortSignal: signal }),
    );
    return suspendOutcomes(ids, out.StoppingInstances, 'stopped', 'StopInstances', refused);
  } catch (err) {
    throw toProviderError(err, 'StopInstances', signal);
  }
}

/**
 * Terminates instances and says per instance what EC2 did. An instance EC2 no longer knows is
 * already gone, which is the goal: since one unknown id fails the whole request, a batch that
 * hits that is retried one by one.
 */
export async function terminateMachines(
  client: EC2Client,
  ids: readonly string[],
  signal: AbortSignal,
  opts?: Ec2CallOptions,
  why: string | null = null,
): Promise<SuspendOutcome[]> {
  const out: SuspendOutcome[] = [];
  for (const batch of chunks(ids)) out.push(...(await terminateBatch(client, batch, signal, opts, why)));
  return out;
}

async function terminateBatch(client: EC2Client, ids: readonly string[], signal: AbortSignal, opts: Ec2CallOptions | undefined, why: string | null): Promise<SuspendOutcome[]> {
  const terminate = async (batch: string[]) => {
    const out = await attempt('TerminateInstances', signal, opts, () =>
      client.send(new TerminateInstancesCommand({ InstanceIds: batch }), { abortSignal: signal }),
    );
    return suspendOutcomes(batch, out.TerminatingInstances, 'terminated', 'TerminateInstances', why);
  };
  const one = (id: string) =>
    terminate([id]).catch((err: unknown): SuspendOutcome[] => {
      if (classifyEc2Error(err, signal).kind !== 'not-found') throw err;
      return [{ id, did: 'terminated', reason: 'EC2 no longer knows it' }];
    });
  try {
    if (ids.length <= 1) return ids.length ? await one(ids[0]!) : [];
    try {
      return await terminate([...ids]);
    } catch (err) {
      if (classifyEc2Error(err, signal).kind !== 'not-found') throw err;
      const out: SuspendOutcome[] = [];
      for (const id of ids) out.push(...(await one(id)));
      return out;
    }
  } catch (err) {
    throw toProviderError(err, 'TerminateInstances', signal);
  }
}

/** One way to try a launch: which market, which instance type (the template's when absent), which subnet. */
export interface LaunchCandidate {
  market: 'spot' | 'on-demand';
  instanceType: string | undefined;
  subnetId: string;
}

/** What {@link launchMachines} launches. */
export interface Ec2LaunchRequest {
  pool: string;
  config: Ec2PoolConfig;
  count: number;
  /** Idempotency token (≤ 64 ASCII characters); the same token never launches twice. */
  clientToken: string;
  /** On-demand only, whatever the pool's spot setting (the preemption fallback). */
  onDemand?: boolean;
  /**
   * The instances' user-data (raw text; sent base64-encoded, as RunInstances wants it), in place
   * of the launch template's. Every instance of one request gets the same.
   */
  userData?: string;
}

/** RunInstances' limit on user-data, before base64 encoding. */
export const USER_DATA_MAX_BYTES = 16 * 1024;

/** What one RunInstances of a launch got. */
export interface Ec2Placement {
  candidate: LaunchCandidate;
  /** Instances asked for (MaxCount) and given. */
  asked: number;
  got: number;
}

/** A launch that got at least one instance, where they went, and the capacity refusals met on the way. */
export interface Ec2LaunchResult {
  machines: Machine[];
  placements: Ec2Placement[];
  refusals: { candidate: LaunchCandidate; code: string | undefined }[];
}

/**
 * The order launches are tried in: spot before on-demand (when the pool allows either; only
 * on-demand when `onDemand` asks for it), the pool's instance types in the order given, and
 * every subnet for a type before the next type. Subnets start at an offset derived from the
 * client token, which spreads launches over the zones while keeping the order identical when
 * the same launch is retried.
 */
export function launchCandidates(config: Ec2PoolConfig, clientToken: string, onDemand = false): LaunchCandidate[] {
  const markets: LaunchCandidate['market'][] =
    config.spot && !onDemand ? (config.spotFallbackToOnDemand ? ['spot', 'on-demand'] : ['spot']) : ['on-demand'];
  const types: (string | undefined)[] = config.instanceTypes.length > 0 ? config.instanceTypes : [undefined];
  const offset = createHash('sha256').update(clientToken).digest().readUInt32BE(0) % Math.max(1, config.subnetIds.length);
  const subnets = [...config.subnetIds.slice(offset), ...config.subnetIds.slice(0, offset)];
  return markets.flatMap((market) => types.flatMap((instanceType) => subnets.map((subnetId) => ({ market, instanceType, subnetId }))));
}

/**
 * The ClientToken of the n-th request of a launch: one per candidate, then one per candidate
 * asked again for the rest (n from the candidates' count on). EC2 rejects a token reused with
 * different parameters (IdempotentParameterMismatch), so each has its own; the first is the
 * caller's token.
 */
export function candidateToken(clientToken: string, index: number): string {
  if (index === 0) return clientToken.slice(0, 64);
  const suffix = `-${index}`;
  return clientToken.slice(0, 64 - suffix.length) + suffix;
}

/** The tags every launched instance and volume carries: the pool's tags, a Name, and the pool tag. */
function launchTags(pool: string, config: Ec2PoolConfig): Tag[] {
  const extra = Object.entries(config.tags).filter(([k]) => k !== POOL_TAG && k !== 'Name');
  return [
    { Key: POOL_TAG, Value: pool },
    { Key: 'Name', Value: config.tags.Name ?? `spillway-${pool}` },
    ...extra.map(([Key, Value]) => ({ Key, Value })),
  ];
}

function runInput(req: Ec2LaunchRequest, candidate: LaunchCandidate, clientToken: string, count: number): RunInstancesCommandInput {
  const t = req.config.launchTemplate;
  const tags = launchTags(req.pool, req.config);
  return {
    LaunchTemplate: t.id ? { LaunchTemplateId: t.id, Version: t.version } : { LaunchTemplateName: t.name, Version: t.version },
    // MinCount 1: EC2 launches as many as it has capacity for, up to MaxCount, instead of
    // refusing the whole request when one short; the rest is asked of the next candidate.
    MinCount: 1,
    MaxCount: count,
    SubnetId: candidate.subnetId,
    ...(candidate.instanceType ? { InstanceType: candidate.instanceType as _InstanceType } : {}),
    // One-time spot, terminated on interruption: the simplest spot life, and the spot notice
    // drains the agent first. Hibernate-on-interruption would need a persistent request and a
    // template with hibernation enabled; a one-time spot instance cannot be stopped at all.
    ...(candidate.market === 'spot'
      ? { InstanceMarketOptions: { MarketType: 'spot', SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' } } }
      : {}),
    TagSpecifications: [
      { ResourceType: 'instance', Tags: tags },
      { ResourceType: 'volume', Tags: tags },
    ],
    ...(req.userData !== undefined && { UserData: Buffer.from(req.userData, 'utf8').toString('base64') }),
    ClientToken: clientToken,
  };
}

/**
 * Launches up to `count` instances from the pool's launch template, walking
 * {@link launchCandidates}: each RunInstances asks MinCount 1 / MaxCount = its share and takes
 * what EC2 gives, the shortfall spread evenly over the subnets of one market+type and then
 * carried on to the next type. A capacity refusal moves on to the next candidate, a spot-only
 * refusal (price, spot quota) skips to on-demand when the pool allows it; any other error ends
 * the launch, keeping what earlier candidates launched. Rejects only when nothing launched;
 * fewer than `count` is a normal answer, the caller asks for the rest later. The template
 * must not define network interfaces, because the subnet is chosen here (EC2 refuses both).
 */
export async function launchMachines(client: EC2Client, req: Ec2LaunchRequest, signal: AbortSignal, opts?: Ec2CallOptions): Promise<Ec2LaunchResult> {
  if (req.userData !== undefined && Buffer.byteLength(req.userData, 'utf8') > USER_DATA_MAX_BYTES) {
    // https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/user-data.html: "limited to 16 KB, in raw form, before it is base64-encoded"
    throw new ProviderError(`user-data is ${Buffer.byteLength(req.userData, 'utf8')} bytes; EC2 takes at most ${USER_DATA_MAX_BYTES} before base64`, 'fatal', 'InvalidParameterValue');
  }
  const candidates = launchCandidates(req.config, req.clientToken, req.onDemand);
  const group = (c: LaunchCandidate) => `${c.market}/${c.instanceType ?? ''}`;
  const result: Ec2LaunchResult = { machines: [], placements: [], refusals: [] };
  let remaining = req.count;
  let lastRefusal: unknown;
  let spotRefused = false;
  try {
    for (const [index, candidate] of candidates.entries()) {
      if (remaining <= 0) break;
      if (candidate.market === 'spot' && spotRefused) continue;
      // This candidate's share: what is left, over the subnets of its market+type still to try.
      const left = candidates.slice(index).filter((c) => group(c) === group(candidate)).length;
      const asked = Math.ceil(remaining / left);
      const input = runInput(req, candidate, candidateToken(req.clientToken, index), asked);
      try {
        const out = await attempt('RunInstances', signal, opts, () => client.send(new RunInstancesCommand(input), { abortSignal: signal }));
        const machines = (out.Instances ?? []).map(machineFromInstance).filter((m): m is Machine => m !== undefined);
        result.machines.push(...machines);
        result.placements.push({ candidate, asked, got: machines.length });
        remaining -= machines.length;
      } catch (err) {
        const c = classifyEc2Error(err, signal);
        const spotOnly = c.kind === 'spot-capacity' && candidate.market === 'spot';
        if (c.kind !== 'capacity' && !spotOnly) {
          if (result.machines.length === 0) throw err;
          opts?.log?.error('ec2.launch-partial', { pool: req.pool, launched: result.machines.length, wanted: req.count, code: c.code, error: c.message });
          return result;
        }
        if (spotOnly) spotRefused = true;
        lastRefusal = err;
        result.refusals.push({ candidate, code: c.code });
        opts?.log?.warn('ec2.launch-refused', { pool: req.pool, ...candidate, asked, code: c.code, reason: c.message });
      }
    }
    // A candidate that gave all it was asked may have more: it is asked for the rest (each
    // such request with a token of its own past the candidates'), so capacity that is left in
    // one place is used now rather than over several steps of ever smaller shares.
    for (const [k, p] of [...result.placements].entries()) {
      if (remaining <= 0) break;
      if (p.got < p.asked) continue;
      const input = runInput(req, p.candidate, candidateToken(req.clientToken, candidates.length + k), remaining);
      try {
        const out = await attempt('RunInstances', signal, opts, () => client.send(new RunInstancesCommand(input), { abortSignal: signal }));
        const machines = (out.Instances ?? []).map(machineFromInstance).filter((m): m is Machine => m !== undefined);
        result.machines.push(...machines);
        result.placements.push({ candidate: p.candidate, asked: remaining, got: machines.length });
        remaining -= machines.length;
      } catch (err) {
        const c = classifyEc2Error(err, signal);
        if (c.kind !== 'capacity' && c.kind !== 'spot-capacity') {
          opts?.log?.error('ec2.launch-partial', { pool: req.pool, launched: result.machines.length, wanted: req.count, code: c.code, error: c.message });
          break;
        }
        result.refusals.push({ candidate: p.candidate, code: c.code });
      }
    }
    if (result.machines.length === 0) throw lastRefusal;
    return result;
  } catch (err) {
    throw toProviderError(err, 'RunInstances', signal);
  }
}

/**
 * The instances launched with these ClientTokens, any state but terminated: what a launch
 * whose answer was lost, or whose master crashed mid-call, actually made. EC2's
 * `client-token` filter finds them whatever their tags.
 */
export async function describeLaunched(client: EC2Client, clientTokens: readonly string[], signal: AbortSignal, opts?: Ec2CallOptions): Promise<Machine[]> {
  if (clientTokens.length === 0) return [];
  const filters: Filter[] = [
    { Name: 'client-token', Values: [...clientTokens] },
    { Name: 'instance-state-name', Values: [...LIVE_INSTANCE_STATES] },
  ];
  try {
    return await describeAll(client, filters, signal, opts);
  } catch (err) {
    throw toProviderError(err, 'DescribeInstances', signal);
  }
}

/**
 * Resolves the launch template's id, or fails with a fatal ProviderError carrying EC2's code
 * (InvalidLaunchTemplateId.NotFound / .Malformed, InvalidLaunchTemplateName.NotFoundException)
 * when EC2 does not know it. The version is not checked: `$Latest`/`$Default` always exist.
 */
export async function verifyLaunchTemplate(
  client: EC2Client,
  template: Ec2PoolConfig['launchTemplate'],
  signal: AbortSignal,
  opts?: Ec2CallOptions,
): Promise<string> {
  const label = template.id ? `id ${template.id}` : `name "${template.name ?? ''}"`;
  const input = template.id ? { LaunchTemplateIds: [template.id] } : { LaunchTemplateNames: [template.name ?? ''] };
  let id: string | undefined;
  try {
    const out = await attempt('DescribeLaunchTemplates', signal, opts, () =>
      client.send(new DescribeLaunchTemplatesCommand(input), { abortSignal: signal }),
    );
    id = out.LaunchTemplates?.[0]?.LaunchTemplateId;
  } catch (err) {
    const c = classifyEc2Error(err, signal);
    if (/^InvalidLaunchTemplate(Id|Name)\./.test(c.code ?? '')) {
      throw new ProviderError(`launch template ${label} does not exist (${c.code ?? ''})`, 'fatal', c.code, { cause: err });
    }
    throw toProviderError(err, 'DescribeLaunchTemplates', signal);
  }
  if (!id) throw new ProviderError(`launch template ${label} does not exist`, 'fatal', undefined);
  return id;
}

/** Fails with a fatal ProviderError naming every subnet of `subnetIds` that EC2 does not know. */
export async function verifySubnets(client: EC2Client, subnetIds: readonly string[], signal: AbortSignal, opts?: Ec2CallOptions): Promise<void> {
  let missing: string[];
  try {
    // A filter, not SubnetIds, so every unknown subnet is reported rather than only the first.
    const out = await attempt('DescribeSubnets', signal, opts, () =>
      client.send(new DescribeSubnetsCommand({ Filters: [{ Name: 'subnet-id', Values: [...subnetIds] }] }), { abortSignal: signal }),
    );
    const found = new Set((out.Subnets ?? []).map((s) => s.SubnetId));
    missing = subnetIds.filter((id) => !found.has(id));
  } catch (err) {
    throw toProviderError(err, 'DescribeSubnets', signal);
  }
  if (missing.length > 0) throw new ProviderError(`subnets do not exist: ${missing.join(', ')}`, 'fatal', 'InvalidSubnetID.NotFound');
}
