import {
  DescribeInstancesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeSubnetsCommand,
  EC2Client,
  EC2ServiceException,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  type DescribeInstancesCommandInput,
  type Filter,
  type Instance,
  type RunInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';

/** An EC2 error as the SDK raises it: the AWS code as `name`, 4xx = client fault, 5xx = server. */
export function awsError(code: string, fault: 'client' | 'server' = 'client', httpStatusCode?: number): EC2ServiceException {
  return new EC2ServiceException({ name: code, $fault: fault, $metadata: { httpStatusCode }, message: `${code} (fake EC2)` });
}

/**
 * How the API behaves right now:
 * - `ok`: every call does what EC2 would;
 * - `throttled`: every call is refused with RequestLimitExceeded (nothing happens);
 * - `5xx`: every call fails with 503 Unavailable / 500 InternalError — and RunInstances is
 *   *processed* before its answer is lost, EC2's worst case for a 5xx ("the request may have
 *   succeeded"), so only a retry with the same ClientToken avoids a second launch.
 */
export type Ec2Weather = 'ok' | 'throttled' | '5xx';

/** One request the code under test sent, at the fake clock's time. */
export interface Ec2Call {
  action: string;
  at: number;
  input: Record<string, unknown>;
  /** The error code it was answered with, if any. */
  error?: string;
}

interface FakeInstance {
  id: string;
  state: 'pending' | 'running' | 'stopping' | 'stopped' | 'terminated';
  hibernated: boolean;
  /** A one-time spot instance: EC2 cannot stop it (UnsupportedOperation). */
  spot: boolean;
  /** Launched with hibernation enabled; without it a hibernating stop is refused. */
  canHibernate: boolean;
  tags: Record<string, string>;
  privateIp: string;
  /** The ClientToken of the RunInstances that created it; undefined for pre-existing ones. */
  clientToken: string | undefined;
}

/**
 * Where the fake answers: `client-mock` stubs the client's `send` with aws-sdk-client-mock
 * (commandCalls and friends work); `middleware` sits at the bottom of the client's own
 * middleware stack, in place of the HTTP call, so every request first goes through the SDK's
 * validation, serialization, signing and retry middleware like a real one.
 */
export type FakeEc2Via = 'client-mock' | 'middleware';

/**
 * A small, strict, stateful EC2 behind aws-sdk-client-mock or the client's middleware stack:
 * instances with tags and states, ClientToken idempotency (and IdempotentParameterMismatch),
 * all-or-nothing id checks, and a switchable {@link Ec2Weather}. Every request is recorded
 * with the injected clock's time.
 */
export class FakeEc2 {
  readonly calls: Ec2Call[] = [];
  weather: Ec2Weather = 'ok';
  /** Awaited before each request is answered (middleware way only): a test looks at the world mid-call. */
  beforeRequest: ((action: string, input: Record<string, unknown>) => Promise<void>) | undefined;
  /** The next this many requests (any action) are refused with RequestLimitExceeded: a throttling storm. */
  throttleNext = 0;
  /** Instances each (subnet, instance type) can still launch; absent: unlimited. See {@link setCapacity}. */
  private readonly capacity = new Map<string, number>();
  private readonly stub: ReturnType<typeof mockClient> | undefined;
  private readonly instances = new Map<string, FakeInstance>();
  private readonly launches = new Map<string, { ids: string[]; params: string }>();
  private seq = 0;
  private fives = 0;

  constructor(
    private readonly now: () => number,
    via: FakeEc2Via = 'client-mock',
    /** The client to answer for (e.g. one made by createEc2Client); the middleware way only. */
    readonly client: EC2Client = new EC2Client({ region: 'eu-west-1', maxAttempts: 1, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } }),
  ) {
    const handlers = new Map<string, (input: never) => unknown>([
      [
        DescribeLaunchTemplatesCommand.name,
        (input: object) => this.handle('DescribeLaunchTemplates', input, () => ({ LaunchTemplates: [{ LaunchTemplateId: 'lt-0fake', LaunchTemplateName: 'builder' }] })),
      ],
      [
        DescribeSubnetsCommand.name,
        (input: { Filters?: Filter[] }) =>
          this.handle('DescribeSubnets', input, () => ({ Subnets: (input.Filters?.[0]?.Values ?? []).map((SubnetId) => ({ SubnetId })) })),
      ],
      [DescribeInstancesCommand.name, (input: DescribeInstancesCommandInput) => this.handle('DescribeInstances', input, () => this.describe(input))],
      [StartInstancesCommand.name, (input: { InstanceIds?: string[] }) => this.handle('StartInstances', input, () => this.start(input.InstanceIds ?? []))],
      [
        StopInstancesCommand.name,
        (input: { InstanceIds?: string[]; Hibernate?: boolean }) => this.handle('StopInstances', input, () => this.stop(input.InstanceIds ?? [], input.Hibernate === true)),
      ],
      [
        TerminateInstancesCommand.name,
        (input: { InstanceIds?: string[] }) =>
          this.handle('TerminateInstances', input, () => ({
            TerminatingInstances: this.existing(input.InstanceIds ?? []).map((i) => this.change(i, 'shutting-down', 'terminated')),
          })),
      ],
      [RunInstancesCommand.name, (input: RunInstancesCommandInput) => this.handle('RunInstances', input, () => this.run(input))],
    ]);
    if (via === 'client-mock') {
      const s = mockClient(this.client);
      this.stub = s;
      for (const command of [
        DescribeLaunchTemplatesCommand,
        DescribeSubnetsCommand,
        DescribeInstancesCommand,
        StartInstancesCommand,
        StopInstancesCommand,
        TerminateInstancesCommand,
        RunInstancesCommand,
      ]) {
        s.on(command as never).callsFake(handlers.get(command.name)! as never);
      }
      return;
    }
    this.stub = undefined;
    this.client.middlewareStack.add(
      (_next, context) => async (args) => {
        const handler = handlers.get(context.commandName ?? '');
        if (!handler) throw awsError('InvalidAction');
        await this.beforeRequest?.(context.commandName?.replace(/Command$/, '') ?? '', args.input as Record<string, unknown>);
        return { response: {}, output: { $metadata: {}, ...(handler(args.input as never) as object) } as never };
      },
      { step: 'deserialize', priority: 'high', name: 'fakeEc2' },
    );
  }

  /** A stopped (optionally hibernated) instance of `pool` that existed before the test. */
  addStopped(id: string, pool: string, hibernated = false): this {
    return this.add(id, pool, 'stopped', { hibernated });
  }

  /** An instance of `pool` that existed before the test, in `state`. */
  add(id: string, pool: string, state: FakeInstance['state'], over: Partial<Pick<FakeInstance, 'hibernated' | 'spot' | 'canHibernate'>> = {}): this {
    this.instances.set(id, {
      id,
      state,
      hibernated: false,
      spot: false,
      canHibernate: true,
      ...over,
      tags: { 'spillway:pool': pool },
      privateIp: `10.9.0.${this.instances.size + 1}`,
      clientToken: undefined,
    });
    return this;
  }

  /** How many more instances `subnet` can launch of `instanceType` (undefined: the template's). */
  setCapacity(subnet: string, instanceType: string | undefined, left: number): this {
    this.capacity.set(`${subnet} ${instanceType ?? ''}`, left);
    return this;
  }

  instance(id: string): Readonly<FakeInstance> | undefined {
    return this.instances.get(id);
  }

  /** Every instance that is not terminated. */
  live(): Readonly<FakeInstance>[] {
    return [...this.instances.values()].filter((i) => i.state !== 'terminated');
  }

  /** Instances RunInstances created (however many times their token was retried). */
  created(): Readonly<FakeInstance>[] {
    return [...this.instances.values()].filter((i) => i.clientToken !== undefined);
  }

  callsOf(action: string): Ec2Call[] {
    return this.calls.filter((c) => c.action === action);
  }

  /** Changes an instance behind spillway's back (a crash, a spot stop, a human). */
  set(id: string, state: FakeInstance['state']): void {
    const i = this.instances.get(id);
    if (!i) throw new Error(`fake EC2: no instance ${id}`);
    i.state = state;
  }

  restore(): void {
    this.stub?.restore();
  }

  private handle(action: string, input: object, fn: () => unknown): unknown {
    const call: Ec2Call = { action, at: this.now(), input: { ...input } };
    this.calls.push(call);
    const refuse = (err: EC2ServiceException) => {
      call.error = err.name;
      throw err;
    };
    if (this.throttleNext > 0) {
      this.throttleNext--;
      refuse(awsError('RequestLimitExceeded'));
    }
    if (this.weather === 'throttled') refuse(awsError('RequestLimitExceeded'));
    if (this.weather === '5xx') {
      if (action === 'RunInstances') {
        try {
          fn();
        } catch (err) {
          refuse(err as EC2ServiceException);
        }
      }
      refuse(this.fives++ % 2 === 0 ? awsError('Unavailable', 'server', 503) : awsError('InternalError', 'server', 500));
    }
    try {
      return fn();
    } catch (err) {
      return refuse(err as EC2ServiceException);
    }
  }

  private describe(input: DescribeInstancesCommandInput): unknown {
    if (input.InstanceIds) throw awsError('InvalidParameterCombination');
    let found = [...this.instances.values()];
    for (const f of input.Filters ?? []) {
      const values = new Set(f.Values ?? []);
      if (f.Name === 'instance-state-name') found = found.filter((i) => values.has(i.state));
      else if (f.Name === 'instance-id') found = found.filter((i) => values.has(i.id));
      else if (f.Name === 'client-token') found = found.filter((i) => i.clientToken !== undefined && values.has(i.clientToken));
      else if (f.Name?.startsWith('tag:')) found = found.filter((i) => values.has(i.tags[f.Name!.slice(4)] ?? ''));
      else throw awsError('InvalidParameterValue');
    }
    const Instances: Instance[] = found.map((i) => ({
      InstanceId: i.id,
      State: { Name: i.state },
      PrivateIpAddress: i.privateIp,
      ...(i.clientToken ? { ClientToken: i.clientToken } : {}),
      ...(i.spot ? { InstanceLifecycle: 'spot' as const } : {}),
      ...(i.hibernated && (i.state === 'stopped' || i.state === 'stopping') ? { StateReason: { Code: 'Client.UserInitiatedHibernate', Message: 'hibernated' } } : {}),
      Tags: Object.entries(i.tags).map(([Key, Value]) => ({ Key, Value })),
    }));
    return { Reservations: Instances.length ? [{ Instances }] : [] };
  }

  private start(ids: string[]): unknown {
    const found = this.existing(ids);
    for (const i of found) if (i.state !== 'stopped') throw awsError('IncorrectInstanceState');
    return { StartingInstances: found.map((i) => this.change(i, 'pending', 'running', { hibernated: false })) };
  }

  /** All or nothing, as EC2 checks the whole request first; answers 'stopping' as EC2 does. */
  private stop(ids: string[], hibernate: boolean): unknown {
    const found = this.existing(ids);
    for (const i of found) if (i.state !== 'running') throw awsError('IncorrectInstanceState');
    if (found.some((i) => i.spot)) throw awsError('UnsupportedOperation');
    if (hibernate && found.some((i) => !i.canHibernate)) throw awsError('UnsupportedHibernationConfiguration');
    return { StoppingInstances: found.map((i) => this.change(i, 'stopping', 'stopped', { hibernated: hibernate })) };
  }

  /** Moves an instance on (to `settled`, at once) and answers with the change EC2 reports (`answered`). */
  private change(i: FakeInstance, answered: string, settled: FakeInstance['state'], over: Partial<FakeInstance> = {}): object {
    const previous = i.state;
    Object.assign(i, over, { state: settled });
    return { InstanceId: i.id, PreviousState: { Name: previous }, CurrentState: { Name: answered } };
  }

  private run(input: RunInstancesCommandInput): unknown {
    const token = input.ClientToken;
    if (!token) throw awsError('MissingParameter');
    if (!input.MinCount || input.MinCount < 1 || !input.MaxCount || input.MaxCount < input.MinCount) throw awsError('InvalidParameterValue');
    if (!input.LaunchTemplate || !input.SubnetId) throw awsError('MissingParameter');
    const tags = Object.fromEntries((input.TagSpecifications?.find((s) => s.ResourceType === 'instance')?.Tags ?? []).map((t) => [t.Key!, t.Value!]));
    if (!tags['spillway:pool']) throw awsError('InvalidParameterValue');
    const params = JSON.stringify({ ...input, ClientToken: undefined });
    const earlier = this.launches.get(token);
    if (earlier && earlier.params !== params) throw awsError('IdempotentParameterMismatch');
    // EC2 launches what it has capacity for, up to MaxCount, or refuses below MinCount.
    const where = `${input.SubnetId} ${input.InstanceType ?? ''}`;
    const left = this.capacity.get(where) ?? Infinity;
    const count = Math.min(input.MaxCount, left);
    if (!earlier && count < input.MinCount) throw awsError('InsufficientInstanceCapacity', 'server', 500);
    if (!earlier && left !== Infinity) this.capacity.set(where, left - count);
    const ids =
      earlier?.ids ??
      Array.from({ length: count }, () => {
        const id = `i-0launched${String(++this.seq).padStart(4, '0')}`;
        const spot = input.InstanceMarketOptions?.MarketType === 'spot';
        this.instances.set(id, { id, state: 'running', hibernated: false, spot, canHibernate: !spot, tags, privateIp: `10.9.1.${this.seq}`, clientToken: token });
        return id;
      });
    this.launches.set(token, { ids, params });
    return { Instances: ids.map((id) => ({ InstanceId: id, State: { Name: 'pending' }, PrivateIpAddress: this.instances.get(id)!.privateIp })) };
  }

  /** EC2 checks every id first: one unknown id fails the whole request. */
  private existing(ids: string[]): FakeInstance[] {
    if (ids.length === 0) throw awsError('MissingParameter');
    if (ids.length > 1000) throw awsError('InvalidParameterValue');
    return ids.map((id) => {
      const i = this.instances.get(id);
      if (!i || i.state === 'terminated') throw awsError('InvalidInstanceID.NotFound');
      return i;
    });
  }
}
