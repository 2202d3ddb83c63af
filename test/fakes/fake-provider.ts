import { ProviderError, type LaunchRequest, type Machine, type MachineState, type Provider, type SuspendMode, type SuspendOutcome } from '../../src/provisioner';

/** One call the code under test made, in call order; `error` is set when the call was rejected. */
export type ProviderCall =
  | { op: 'setup'; error?: string }
  | { op: 'list'; error?: string }
  | { op: 'start'; ids: string[]; error?: string }
  | { op: 'suspend'; ids: string[]; mode: SuspendMode; error?: string }
  | { op: 'launch'; count: number; clientToken: string; ids: string[]; onDemand?: boolean; error?: string }
  | { op: 'terminate'; ids: string[]; error?: string }
  | { op: 'close'; error?: string };

export type ProviderOp = ProviderCall['op'];

export interface FakeProviderOptions {
  kind?: 'local' | 'ec2';
  /** Prefix of launched machines' ids. @defaultValue 'i-new-' */
  idPrefix?: string;
  /** Time for `launchedAt`. @defaultValue Date.now */
  now?: () => number;
  /**
   * Awaited inside every call after it is recorded and before it takes effect, e.g. to yield
   * to the event loop so concurrent callers interleave, or to look at the store mid-call.
   */
  during?: (call: ProviderCall) => Promise<void> | void;
}

/**
 * A strict in-memory `Provider`: it keeps machines, records every call, and rejects calls a
 * real cloud would reject: starting a machine that is not stopped (`IncorrectInstanceState`,
 * retry), suspending one that is not running (same), any unknown or terminated id
 * (`InvalidInstanceID.NotFound`, fatal), empty id lists (`MissingParameter`), a launch without
 * a client token. `failNext()` makes the next call (of one kind) fail with a given error.
 */
export class FakeProvider implements Provider {
  readonly kind: 'local' | 'ec2';
  readonly calls: ProviderCall[] = [];
  private readonly machines = new Map<string, Machine>();
  private readonly failures: Array<{ op: ProviderOp | undefined; error: Error }> = [];
  private readonly launches = new Map<string, string[]>();
  private seq = 0;
  /**
   * What the cloud does when asked to suspend a machine, instead of the mode asked for (a
   * refused hibernation: `stopped`; a spot instance: `terminated`; a machine left as it was: `failed`).
   */
  readonly suspendAs = new Map<string, SuspendOutcome['did']>();
  /** See {@link FakeProviderOptions.during}; a test may set it at any time. */
  during: FakeProviderOptions['during'];

  constructor(private readonly o: FakeProviderOptions = {}) {
    this.kind = o.kind ?? 'ec2';
    this.during = o.during;
  }

  /** Puts a machine there, as if it had always existed. */
  add(id: string, state: MachineState, over: Partial<Omit<Machine, 'id' | 'state'>> = {}): this {
    if (this.machines.has(id)) throw new Error(`fake provider: machine ${id} added twice`);
    this.machines.set(id, { id, state, privateIp: `10.0.0.${this.machines.size + 1}`, spot: false, hibernated: false, launchedAt: this.now(), ...over });
    return this;
  }

  /** Changes a machine behind spillway's back (a crash, a spot stop, a human). */
  set(id: string, state: MachineState, over: Partial<Omit<Machine, 'id' | 'state'>> = {}): void {
    const m = this.machines.get(id);
    if (!m) throw new Error(`fake provider: no machine ${id}`);
    Object.assign(m, over, { state });
  }

  /** Removes a machine entirely (gone from the account). */
  forget(id: string): void {
    this.machines.delete(id);
  }

  machine(id: string): Machine | undefined {
    const m = this.machines.get(id);
    return m && { ...m };
  }

  /** The next call (of `op`, if given) fails with `error` instead of taking effect. */
  failNext(error: Error = new ProviderError('injected failure', 'retry', 'InsufficientInstanceCapacity'), op?: ProviderOp): void {
    this.failures.push({ op, error });
  }

  callsOf<O extends ProviderOp>(op: O): Array<Extract<ProviderCall, { op: O }>> {
    return this.calls.filter((c): c is Extract<ProviderCall, { op: O }> => c.op === op);
  }

  /** Accepted start calls per machine id (rejected calls do not count). */
  startsOf(id: string): number {
    return this.callsOf('start').filter((c) => !c.error && c.ids.includes(id)).length;
  }

  /** Calls that change a machine (not `list`, `setup` or `close`). */
  mutations(): ProviderCall[] {
    return this.calls.filter((c) => c.op !== 'list' && c.op !== 'setup' && c.op !== 'close');
  }

  async setup(signal: AbortSignal): Promise<void> {
    await this.enter({ op: 'setup' }, signal);
  }

  async list(signal: AbortSignal): Promise<Machine[]> {
    await this.enter({ op: 'list' }, signal);
    return [...this.machines.values()].filter((m) => m.state !== 'terminated').map((m) => ({ ...m }));
  }

  async start(ids: readonly string[], signal: AbortSignal): Promise<void> {
    const call: ProviderCall = { op: 'start', ids: [...ids] };
    await this.enter(call, signal);
    this.check(call, () => {
      const ms = this.existing(ids);
      for (const m of ms) if (m.state !== 'stopped') throw incorrectState(m, 'start');
      for (const m of ms) Object.assign(m, { state: 'running', hibernated: false });
    });
  }

  async suspend(ids: readonly string[], mode: SuspendMode, signal: AbortSignal): Promise<SuspendOutcome[]> {
    const call: ProviderCall = { op: 'suspend', ids: [...ids], mode };
    await this.enter(call, signal);
    let out: SuspendOutcome[] = [];
    this.check(call, () => {
      if (!['hibernate', 'stop', 'terminate'].includes(mode)) throw new ProviderError(`unknown suspend mode ${String(mode)}`, 'fatal', 'InvalidParameterValue');
      const ms = this.existing(ids);
      if (mode !== 'terminate') for (const m of ms) if (m.state !== 'running' && m.state !== 'pending') throw incorrectState(m, mode);
      const asked = ({ hibernate: 'hibernated', stop: 'stopped', terminate: 'terminated' } as const)[mode];
      out = ms.map((m) => {
        const did = this.suspendAs.get(m.id) ?? asked;
        if (did === 'terminated') m.state = 'terminated';
        else if (did !== 'failed') Object.assign(m, { state: 'stopped', hibernated: did === 'hibernated' });
        return { id: m.id, did, reason: did === asked ? null : `fake cloud: ${did} instead` };
      });
    });
    return out;
  }

  async launch(req: LaunchRequest, signal: AbortSignal): Promise<Machine[]> {
    const call: Extract<ProviderCall, { op: 'launch' }> = { op: 'launch', count: req.count, clientToken: req.clientToken, ids: [], ...(req.onDemand !== undefined && { onDemand: req.onDemand }) };
    await this.enter(call, signal);
    let out: Machine[] = [];
    this.check(call, () => {
      const unknown = Object.keys(req).filter((k) => k !== 'count' && k !== 'clientToken' && k !== 'onDemand');
      if (unknown.length) throw new ProviderError(`unknown launch fields: ${unknown.join(', ')}`, 'fatal', 'InvalidParameter');
      if (!Number.isInteger(req.count) || req.count < 1) throw new ProviderError(`bad count ${req.count}`, 'fatal', 'InvalidParameterValue');
      if (!req.clientToken) throw new ProviderError('launch without a client token', 'fatal', 'MissingParameter');
      // EC2's ClientToken: the same launch retried returns the same instances.
      let ids = this.launches.get(req.clientToken);
      if (!ids) {
        ids = Array.from({ length: req.count }, () => `${this.o.idPrefix ?? 'i-new-'}${++this.seq}`);
        for (const id of ids) this.add(id, 'pending');
        this.launches.set(req.clientToken, ids);
      }
      call.ids = [...ids];
      out = ids.map((id) => ({ ...this.machines.get(id)! }));
    });
    return out;
  }

  async terminate(ids: readonly string[], signal: AbortSignal): Promise<void> {
    const call: ProviderCall = { op: 'terminate', ids: [...ids] };
    await this.enter(call, signal);
    this.check(call, () => {
      for (const m of this.existing(ids)) m.state = 'terminated';
    });
  }

  /** Machines stay: they live in the (fake) cloud, not in this process. */
  async close(): Promise<void> {
    this.calls.push({ op: 'close' });
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  /** Records the call, honours the signal and the `during` hook, then any injected failure. */
  private async enter(call: ProviderCall, signal: AbortSignal): Promise<void> {
    this.calls.push(call);
    if (!(signal instanceof AbortSignal)) throw fail(call, new Error(`${call.op} called without an AbortSignal`));
    if (signal.aborted) throw fail(call, signal.reason as Error);
    await this.during?.(call);
    if (signal.aborted) throw fail(call, signal.reason as Error);
    const i = this.failures.findIndex((f) => f.op === undefined || f.op === call.op);
    if (i >= 0) {
      const { error } = this.failures.splice(i, 1)[0]!;
      throw fail(call, error);
    }
  }

  private check(call: ProviderCall, body: () => void): void {
    try {
      body();
    } catch (err) {
      throw fail(call, err as Error);
    }
  }

  /** All-or-nothing like EC2: one bad id rejects the whole call. */
  private existing(ids: readonly string[]): Machine[] {
    if (ids.length === 0) throw new ProviderError('no instance ids given', 'fatal', 'MissingParameter');
    return ids.map((id) => {
      const m = this.machines.get(id);
      if (!m || m.state === 'terminated') throw new ProviderError(`The instance ID '${id}' does not exist`, 'fatal', 'InvalidInstanceID.NotFound');
      return m;
    });
  }
}

function incorrectState(m: Machine, op: string): ProviderError {
  return new ProviderError(`cannot ${op} instance ${m.id} in state ${m.state}`, 'retry', 'IncorrectInstanceState');
}

function fail(call: ProviderCall, err: Error): Error {
  call.error = err.message;
  return err;
}
