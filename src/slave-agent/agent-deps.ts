import type WebSocket from 'ws';
import type { AgentOptions } from '../config';
import type { BuildIdentity, DiskLimits, Isolation, runProcess } from '../executor';
import type { BackoffPolicy, Clock, Logger } from '../lib';
import type { BuildResult, HeldJob, NoticeFrame } from '../protocol';
import type { AgentRejectedError } from './agent-errors';
import type { DiskState } from './disk-headroom';
import type { HostInfo } from './host-info';
import type { AgentTls } from './master-connection';

/** Everything an agent needs, in one object; only `options` and `log` are required. */
export interface AgentDeps {
  options: AgentOptions;
  log: Logger;
  /** @defaultValue systemClock */
  clock?: Clock;
  /** @defaultValue detectHostInfo() */
  host?: HostInfo;
  /** @defaultValue runProcess */
  runner?: typeof runProcess;
  /** Confinement for builds that ask for resource limits (cgroups, else rlimits). @defaultValue none */
  isolation?: Isolation;
  /** How builds' disk limits are enforced. @defaultValue detected at start (`detectDiskLimits`) */
  disk?: DiskLimits;
  /**
   * Who builds run as (from `detectBuildIdentity`): another user when the agent is root, its
   * own user in private namespaces otherwise. @defaultValue the agent's own user, nothing in between
   */
  identity?: BuildIdentity;
  /** For a wss:// master: the CA its certificate is checked against, and a client certificate. @defaultValue the system CAs, no client certificate */
  tls?: AgentTls;
  /** @defaultValue WebSocket from 'ws' */
  WebSocketImpl?: typeof WebSocket;
  /** Jitter source for reconnect delays. @defaultValue Math.random */
  random?: () => number;
  /**
   * The environment builds start from; the CLI passes its own. The agent token is removed
   * from it. @defaultValue `{ PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' }`
   */
  baseEnv?: Record<string, string>;
  /** Pauses between reconnect attempts. @defaultValue `{ baseMs: 500, maxMs: 30000 }` */
  backoff?: Partial<BackoffPolicy>;
  /** How long `drain()` waits for the master to acknowledge finished builds. @defaultValue 10000 */
  ackWaitMs?: number;
  /** A connection whose `welcome` does not come within this is dropped and retried. @defaultValue 30000 */
  welcomeTimeoutMs?: number;
  /** Between SIGTERM and SIGKILL when a build is timed out or cancelled. @defaultValue 5000 */
  killGraceMs?: number;
  /** Reported in `hello`. @defaultValue the package version */
  version?: string;
}

/** What tests and the CLI can observe. `fatal` precedes the rejection of `start()`. */
export interface AgentEvents {
  welcomed: [{ agentId: string; heartbeatMs: number; reattached: Array<{ queue: string; jobId: string }> }];
  'job-started': [HeldJob];
  'job-finished': [HeldJob, BuildResult];
  'job-cancelled': [HeldJob, string];
  'job-acked': [{ queue: string; jobId: string }];
  /** A build's processes are gone and its directory (and disk image) removed. */
  'job-cleaned': [HeldJob];
  disconnected: [{ code: number; reason: string; retryInMs: number }];
  draining: [];
  drained: [];
  /** Free disk crossed the agent's headroom (`full`: it takes no builds until it is back). */
  disk: [DiskState];
  /** A spot interruption warning or rebalance recommendation read from IMDS. */
  notice: [NoticeFrame];
  fatal: [AgentRejectedError];
}
