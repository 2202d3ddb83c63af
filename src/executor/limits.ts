/** Resource limits for one build. Every field is optional: absent means "no limit". */
export interface ResourceLimits {
  /** CPU quota in cores (1.5 = one and a half cores' worth of time per period). */
  cpus?: number;
  /** Memory ceiling in MiB (RAM; swap is capped to zero where the kernel allows). */
  memoryMb?: number;
  /** Maximum number of processes and threads alive at once in the build. */
  pids?: number;
  /** Disk the build's work dir may use, in MiB; enforced through `RunSpec.disk`, not cgroups. */
  diskMb?: number;
}

/** Which limits a mechanism actually enforces (false never means "probably"). */
export interface Enforcement {
  cpu: boolean;
  memory: boolean;
  pids: boolean;
}

/** How a machine can confine builds, decided once by {@link detectIsolation}. */
export type IsolationKind = 'cgroup-v2' | 'cgroup-v1' | 'none';

/** The per-build control group(s) a build runs in. */
export interface LimitGroup {
  /** The group's name (unique among running builds). */
  readonly name: string;
  /** The limits written into the kernel for this group; anything else is not in force. */
  readonly enforced: Enforcement;
  /** The memory limit in force, in MiB, when `enforced.memory`. */
  readonly memoryLimitMb?: number;
  /**
   * The `cgroup.procs` files a process writes its own pid into to join the group; the runner
   * has the build's first process do that before it execs the build, so no child escapes.
   */
  readonly procsFiles: readonly string[];
  /** Moves an already running process into the group (racy for a process that may fork). */
  add(pid: number): Promise<void>;
  /** How often the kernel's OOM killer killed a process of this group so far. */
  memoryEvents(): Promise<{ oomKills: number }>;
  /** SIGKILLs anything still in the group and removes its directories; rejects if one stays. */
  destroy(): Promise<void>;
}

/** What this machine can enforce, and how to confine one build. */
export interface Isolation {
  readonly kind: IsolationKind;
  /** The limits cgroups enforce here (all false for `none`). */
  readonly cgroups: Enforcement;
  /** Whether the build's first process can raise its `oom_score_adj` (procfs present). */
  readonly oomScoreAdj: boolean;
  /** The `prlimit` binary used for rlimits, when found; otherwise only `ulimit -v` is used. */
  readonly prlimit: string | undefined;
  /**
   * Whether a pids limit that cgroups cannot enforce is approximated with RLIMIT_NPROC
   * (needs `prlimit`; never for root, whom the kernel exempts from it).
   */
  readonly nprocRlimit: boolean;
  /**
   * The cpu group all of this agent's builds run below (low weight, optional ceiling); when
   * set, every build is confined, whether it asks for limits or not.
   */
  readonly buildsCpu: { dir: string; maxCores: number | undefined } | undefined;
  /** The `nice` binary builds are started through (at {@link BUILD_NICE}), when found. */
  readonly nice: string | undefined;
  /** Creates the group(s) for one build under the `spillway` parent. Rejects on failure. */
  create(name: string, limits: ResourceLimits): Promise<LimitGroup>;
  /** Removes the agent's builds group (at agent stop). */
  close(): Promise<void>;
}

/** Builds run at this nice level, below the agent's own, so the agent keeps getting the CPU. */
export const BUILD_NICE = 10;
