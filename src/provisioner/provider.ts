import { SpillwayError } from '../lib';

/** The provider's own view of a machine (EC2's instance state names). */
export type MachineState = 'pending' | 'running' | 'stopping' | 'stopped' | 'shutting-down' | 'terminated';

export interface Machine {
  id: string;
  state: MachineState;
  privateIp: string | null;
  spot: boolean;
  /** Stopped with hibernation (EC2: the instance was hibernated; local: SIGSTOPped). */
  hibernated: boolean;
  launchedAt: number | null;
  /** The ClientToken it was launched with, where the provider has one. */
  clientToken?: string;
}

export type SuspendMode = 'hibernate' | 'stop' | 'terminate';

/**
 * What a suspend call actually did to one machine, which is what its record must say: a pool
 * that asked to hibernate may have got a plain stop (hibernation refused) or a termination
 * (spot instances that cannot stop), and a machine the cloud did not act on has `failed`.
 */
export interface SuspendOutcome {
  id: string;
  did: 'hibernated' | 'stopped' | 'terminated' | 'failed';
  /** Why it differs from the mode asked for (a fallback, a refusal); null when it does not. */
  reason: string | null;
}

export interface LaunchRequest {
  count: number;
  /**
   * Idempotency token: the same launch retried after a timeout must not launch twice
   * (EC2's ClientToken).
   */
  clientToken: string;
  /**
   * Launch on-demand even where the pool launches spot (its job types keep being preempted).
   * Providers without markets ignore it. @defaultValue false
   */
  onDemand?: boolean;
}

/**
 * A source of machines for one pool: `local` (agent processes on this host) or `ec2`.
 * Constructors never fail; `setup()` may, and is retried on its own so one broken cloud
 * account never blocks another pool. Every call takes an AbortSignal that reaches the I/O.
 */
export interface Provider {
  readonly kind: 'local' | 'ec2';
  setup(signal: AbortSignal): Promise<void>;
  /** Every machine of the pool that is not terminated (EC2: by the pool tag, all pages). */
  list(signal: AbortSignal): Promise<Machine[]>;
  /** Starts stopped/hibernated machines. */
  start(ids: readonly string[], signal: AbortSignal): Promise<void>;
  /**
   * Suspends machines; `hibernate` falls back to a plain stop where the machine cannot
   * hibernate. Resolves with one outcome per id, in the order given; rejects only when the
   * whole call failed.
   */
  suspend(ids: readonly string[], mode: SuspendMode, signal: AbortSignal): Promise<SuspendOutcome[]>;
  /**
   * May launch fewer than `req.count` (partial capacity); rejects only when it launched none.
   */
  launch(req: LaunchRequest, signal: AbortSignal): Promise<Machine[]>;
  /**
   * The machines launches with these ClientTokens made, by token (EC2: DescribeInstances by
   * `client-token`), to settle launches recorded before a crash. Providers whose launches
   * cannot outlive the master leave it out.
   */
  launched?(clientTokens: readonly string[], signal: AbortSignal): Promise<Map<string, Machine[]>>;
  terminate(ids: readonly string[], signal: AbortSignal): Promise<void>;
  /**
   * Lets go of what the provider holds in this process (local: its agent processes). Machines
   * in a cloud stay as they are: the next master adopts them.
   */
  close(): Promise<void>;
}

/** A provider call failed; `disposition` says whether trying again later can help. */
export class ProviderError extends SpillwayError {
  readonly code = 'SPILLWAY_E_PROVIDER';
  constructor(
    message: string,
    readonly disposition: 'retry' | 'fatal',
    /** The provider's own error code, e.g. EC2's `InsufficientInstanceCapacity`. */
    readonly providerCode: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
