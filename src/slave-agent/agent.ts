import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { version as packageVersion } from '../../package.json';
import type { AgentOptions } from '../config';
import { detectDiskLimits, runProcess, type DiskLimits } from '../executor';
import { fullJitterDelay, systemClock, type BackoffPolicy, type Clock, type Logger } from '../lib';
import {
  outcomeOf,
  parseMasterFrame,
  type AssignFrame,
  type BuildResult,
  type FinishedFrame,
  type HeldJob,
  type HelloFrame,
  type MasterFrame,
  type NoticeFrame,
} from '../protocol';
import { ActionSupport } from './action-support';
import { prepareAgentDirs, type AgentDirs } from './agent-dirs';
import { AgentRejectedError, fatalCloseHint } from './agent-errors';
import type { AgentDeps, AgentEvents } from './agent-deps';
import { Build } from './build';
import { buildBaseEnv } from './build-env';
import { heartbeat } from './heartbeat';
import { helloFrame } from './hello';
import { diskFrame, startHeadroom, type DiskHeadroom, type DiskState } from './disk-headroom';
import { detectHostInfo, type HostInfo } from './host-info';
import { keyOf, LogOutbox } from './log-outbox';
import { MasterConnection, type ConnectionEnd } from './master-connection';
import { noticeWatchFor, type NoticeWatch } from './notice-watch';
import { StateChanges } from './state-changes';

/** The master's default builds.logMaxBytes, until a welcome says otherwise. */
const DEFAULT_LOG_MAX_BYTES = 1024 * 1024;

const DEFAULT_RECONNECT_BACKOFF: Readonly<BackoffPolicy> = Object.freeze({ baseMs: 500, maxMs: 30_000 });

/**
 * The process on a build machine: keeps a connection to the master (reconnecting with
 * backoff), takes jobs up to its executor count, runs them, streams their output, and holds
 * each result until the master acknowledges it — across reconnects.
 */
export class Agent extends EventEmitter<AgentEvents> {
  private readonly options: AgentOptions;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly host: HostInfo;
  private readonly runner: typeof runProcess;
  private readonly actions: ActionSupport;
  private readonly WebSocketImpl: typeof WebSocket;
  private readonly random: () => number;
  private readonly baseEnv: Record<string, string>;
  private readonly deps: AgentDeps;
  private readonly outbox: LogOutbox;

  private readonly running = new Map<string, Build>();
  /** Cancelled builds whose end the master waits to hear (a cancel frame with `report`). */
  private readonly reportingCancel = new WeakSet<Build>();
  /** Every build until its processes are gone and its directory removed. */
  private readonly unsettled = new Set<Build>();
  private readonly finished = new Map<string, FinishedFrame>();
  private reportedRunning = new Set<string>();
  private reportedFinished = new Set<string>();

  private conn: MasterConnection | undefined;
  private welcomed = false;
  private draining = false;
  private stopping = false;
  private readonly loopAbort = new AbortController();
  private exited: Promise<void> | undefined;
  private drainPromise: Promise<void> | undefined;
  /** Set once `start()` has made them; no build or log can come before. */
  private dirs: AgentDirs | undefined;
  /** How much of a build's log the master keeps (its welcome says); no more is kept for resending. */
  private logMaxBytes = DEFAULT_LOG_MAX_BYTES;
  private disk: DiskLimits | undefined;
  private headroom: DiskHeadroom | undefined;
  private readonly changes: StateChanges;
  /** Watches IMDS for spot notices, on EC2 only. */
  private readonly watch: NoticeWatch | undefined;
  /** The latest notice read from IMDS, repeated to every master this agent connects to. */
  private notice: NoticeFrame | undefined;

  constructor(deps: AgentDeps) {
    super();
    this.deps = deps;
    this.options = deps.options;
    this.log = deps.log.child({ component: 'agent', agent: deps.options.name });
    this.clock = deps.clock ?? systemClock;
    this.host = deps.host ?? detectHostInfo();
    this.runner = deps.runner ?? runProcess;
    this.WebSocketImpl = deps.WebSocketImpl ?? WebSocket;
    this.random = deps.random ?? Math.random;
    this.baseEnv = buildBaseEnv(deps.baseEnv, [deps.options.token, deps.options.casToken]);
    this.changes = new StateChanges(this.clock);
    this.actions = new ActionSupport({
      options: deps.options,
      clock: this.clock,
      log: this.log,
      runner: this.runner,
      baseEnv: this.baseEnv,
      ...(deps.isolation && { isolation: deps.isolation }),
      ...(deps.identity && { identity: deps.identity }),
      ...(deps.killGraceMs !== undefined && { killGraceMs: deps.killGraceMs }),
    });
    this.watch = noticeWatchFor(deps.options, this.clock, this.log, (frame) => this.onNotice(frame));
    this.outbox = new LogOutbox({
      clock: this.clock,
      canSend: () => this.welcomed && this.conn?.writable === true,
      send: (frame) => this.conn?.send(frame),
      spillDir: () => this.dirs!.state,
      limitBytes: () => this.logMaxBytes,
    });
  }

  /**
   * Connects and keeps connecting until `drain()` or `stop()`. Resolves once the agent has
   * stopped; rejects with {@link AgentRejectedError} when the master refuses it for good.
   */
  start(): Promise<void> {
    this.exited ??= this.main();
    return this.exited;
  }

  /** Takes no new jobs, lets running builds finish and be acknowledged, then disconnects. */
  drain(): Promise<void> {
    this.drainPromise ??= this.doDrain();
    return this.drainPromise;
  }

  /** Disconnects at once, cancelling running builds (they are not reported as finished). */
  async stop(): Promise<void> {
    await this.shutdown();
  }

  /** The job ids currently running on this agent. */
  runningJobs(): HeldJob[] {
    return [...this.running.values()].map((b) => b.held);
  }

  /** Finished builds the master has not acknowledged yet. */
  unacknowledged(): FinishedFrame[] {
    return [...this.finished.values()];
  }

  private async main(): Promise<void> {
    const dirs = await prepareAgentDirs({ options: this.options, identity: this.deps.identity, log: this.log });
    this.dirs = dirs;
    this.disk = this.deps.disk ?? (await detectDiskLimits({ workDir: dirs.work, mode: this.options.diskLimit, pollMs: this.options.diskPollMs, log: this.log }));
    this.headroom = await startHeadroom(this.options, { workDir: dirs.work, actions: this.actions, clock: this.clock, log: this.log }, (state) => this.onDiskChange(state));
    this.watch?.start();
    try {
      await this.connectLoop();
    } catch (err) {
      if (err instanceof AgentRejectedError) this.emit('fatal', err);
      throw err;
    } finally {
      this.stopping = true;
      await this.watch?.stop();
      await this.headroom?.stop();
      for (const build of [...this.running.values()]) this.dropBuild(build, 'agent stopped');
      await Promise.all([...this.unsettled].map((b) => b.settled));
      this.outbox.close();
      await dirs.release();
      await this.actions.close().catch(() => undefined);
      this.log.info('agent.stopped', { unacknowledged: this.finished.size });
    }
  }

  private async connectLoop(): Promise<void> {
    let attempt = 0;
    while (!this.stopping) {
      const c = await this.connectOnce();
      if (this.stopping) return;
      const hint = fatalCloseHint(c.code);
      if (hint !== undefined) {
        this.log.error('agent.rejected', { code: c.code, reason: c.reason, hint });
        throw new AgentRejectedError(c.code, c.reason);
      }
      if (c.welcomed) attempt = 0;
      const retryInMs = fullJitterDelay(++attempt, { ...DEFAULT_RECONNECT_BACKOFF, ...this.deps.backoff }, this.random);
      if (c.opened) this.log.warn('agent.disconnected', { code: c.code, reason: c.reason, retryInMs, running: this.running.size });
      else this.log.warn('agent.connect-failed', { master: this.options.master, error: c.reason, retryInMs });
      this.emit('disconnected', { code: c.code, reason: c.reason, retryInMs });
      try {
        await this.clock.sleep(retryInMs, this.loopAbort.signal);
      } catch {
        return;
      }
    }
  }

  /** One connection, from dialling to close. */
  private async connectOnce(): Promise<ConnectionEnd & { welcomed: boolean }> {
    this.log.info('agent.connecting', { master: this.options.master });
    const conn: MasterConnection = new MasterConnection(this.options.master, this.WebSocketImpl, this.clock, this.deps.tls, {
      onOpen: () => {
        conn.send(this.hello());
        this.clock.sleep(this.deps.welcomeTimeoutMs ?? 30_000, conn.signal).then(
          () => {
            if (this.conn === conn && !this.welcomed) {
              this.log.warn('agent.master-silent', { waitingFor: 'welcome' });
              conn.terminate();
            }
          },
          () => undefined,
        );
      },
      onText: (text) => this.onMessage(conn, text),
    });
    this.conn = conn;
    this.welcomed = false;
    const end = await conn.closed;
    const welcomed = this.welcomed;
    if (this.conn === conn) {
      this.conn = undefined;
      this.welcomed = false;
    }
    return { ...end, welcomed };
  }

  private hello(): HelloFrame {
    const running = this.runningJobs();
    const finished = this.unacknowledged();
    this.reportedRunning = new Set(running.map((h) => keyOf(h.queue, h.jobId)));
    this.reportedFinished = new Set(finished.map((f) => keyOf(f.queue, f.jobId)));
    const version = this.deps.version ?? packageVersion;
    // After a notice the agent says hello as draining: no build may reach it before the notice frame does.
    return helloFrame(this.options, this.host, {
      version,
      running,
      finished,
      draining: this.draining || this.notice !== undefined,
      diskFull: this.headroom?.state.full ?? false,
    });
  }

  private onMessage(conn: MasterConnection, text: string): void {
    const parsed = parseMasterFrame(text);
    if (!parsed.ok) {
      this.log.warn('agent.frame-invalid', { reason: parsed.reason });
      return;
    }
    const frame: MasterFrame = parsed.frame;
    switch (frame.type) {
      case 'welcome':
        return this.onWelcome(conn, frame);
      case 'assign':
        return this.onAssign(frame);
      case 'cancel':
        // Only from the connection this agent opened to its master (it listens on no port):
        // a frame of a connection it has since replaced is about a build that is not its any more.
        if (conn !== this.conn) return;
        return this.onCancel(frame.queue, frame.jobId, frame.reason, frame.report === true);
      case 'ack':
        return this.onAck(frame.queue, frame.jobId);
      case 'log-ack':
        return this.outbox.confirm(frame.queue, frame.jobId, frame.offset);
      case 'drain':
        this.log.info('agent.drain-requested', { by: 'master' });
        void this.drain();
        return;
      case 'error':
        this.log.warn('agent.master-error', { code: frame.code, message: frame.message });
        return;
    }
  }

  private onWelcome(conn: MasterConnection, frame: Extract<MasterFrame, { type: 'welcome' }>): void {
    if (this.conn !== conn || this.welcomed) return;
    this.welcomed = true;
    this.logMaxBytes = frame.logMaxBytes ?? DEFAULT_LOG_MAX_BYTES;
    this.log.info('agent.welcomed', { agentId: frame.agentId, heartbeatMs: frame.heartbeatMs, reattached: frame.reattached });
    const reattached = new Set(frame.reattached.map((r) => keyOf(r.queue, r.jobId)));
    for (const key of this.reportedRunning) {
      const build = this.running.get(key);
      if (!build) continue;
      if (reattached.has(key)) this.outbox.resend(build.held.queue, build.held.jobId);
      else this.dropBuild(build, 'not reattached by the master');
    }
    for (const [key, f] of [...this.finished]) {
      // The master settles those reported in hello from there, unless it took them back to
      // hear their output first.
      if (this.reportedFinished.has(key) && !reattached.has(key)) continue;
      // Reported as running in hello, finished before the welcome came.
      if (this.reportedRunning.has(key) && !reattached.has(key)) {
        this.finished.delete(key);
        this.outbox.forget(f.queue, f.jobId);
        continue;
      }
      this.outbox.resend(f.queue, f.jobId);
      this.outbox.flush(f.queue, f.jobId);
      conn.send(f);
    }
    if (this.draining) conn.send({ type: 'draining' });
    const disk = this.headroom?.state;
    if (disk?.full) conn.send(diskFrame(disk));
    if (this.notice) conn.send(this.notice);
    this.outbox.flush();
    void heartbeat(conn, frame.heartbeatMs, { clock: this.clock, log: this.log, running: () => this.runningJobs().map((h) => h.jobId) });
    this.changes.notify();
    this.emit('welcomed', { agentId: frame.agentId, heartbeatMs: frame.heartbeatMs, reattached: frame.reattached });
  }

  private onAssign(frame: AssignFrame): void {
    const { queue, jobId } = frame;
    const key = keyOf(queue, jobId);
    const refuse = (reason: string) => this.log.warn('agent.assign-refused', { queue, jobId, reason });
    // Said back, so the master places the job elsewhere instead of holding it for a build that never starts.
    const decline = (reason: string) => {
      refuse(reason);
      this.conn?.send({ type: 'declined', queue, jobId, lockToken: frame.lockToken, reason });
    };
    // A duplicate assign of a build this agent runs is not declined: the job is running here.
    if (this.running.has(key)) return refuse('already running');
    if (this.draining || this.stopping) return decline('draining');
    if (this.headroom?.state.full) return decline('disk full');
    if (this.running.size >= this.options.executors) return decline(`at capacity (${this.options.executors} executors)`);
    // A new attempt supersedes a result the master never acknowledged, and its output.
    this.finished.delete(key);
    this.outbox.forget(queue, jobId);
    const build: Build = new Build(frame, {
      runner: this.runner,
      clock: this.clock,
      workDir: this.dirs!.work,
      baseEnv: this.baseEnv,
      ...(this.deps.isolation && { isolation: this.deps.isolation }),
      ...(this.deps.identity && { identity: this.deps.identity }),
      ...(this.disk && { disk: this.disk }),
      ...((frame.diskMb ?? this.options.buildDiskMb) !== undefined && { defaultDiskMb: frame.diskMb ?? this.options.buildDiskMb }),
      actions: this.actions,
      killGraceMs: this.deps.killGraceMs ?? this.options.killGraceSec * 1000,
      onOutput: (stream, chunk) => {
        if (!build.cancelled || this.reportingCancel.has(build)) this.outbox.push(queue, jobId, stream, chunk);
      },
      onCleanupError: (dir, err) => this.log.warn('agent.workdir-error', { queue, jobId, dir, error: err }),
      onInternalError: (err) => this.log.error('agent.build-error', { queue, jobId, error: err instanceof Error ? err.message : String(err) }),
    });
    this.running.set(key, build);
    this.unsettled.add(build);
    void build.settled.then(() => {
      this.unsettled.delete(build);
      this.emit('job-cleaned', build.held);
      this.changes.notify();
    });
    this.conn?.send({ type: 'started', ...build.held, startedAt: this.clock.now() });
    this.log.info('agent.job-started', { queue, jobId, attempt: frame.attempt, dir: build.dir });
    this.emit('job-started', build.held);
    void build.result
      .then((result) => this.onBuildResult(build, result))
      .catch((err: unknown) => this.log.error('agent.build-error', { queue, jobId, error: err instanceof Error ? err.message : String(err) }));
  }

  private onBuildResult(build: Build, result: BuildResult): void {
    const { queue, jobId } = build.held;
    const key = keyOf(queue, jobId);
    if (this.running.get(key) !== build || (build.cancelled && !this.reportingCancel.has(build))) return;
    this.running.delete(key);
    const frame: FinishedFrame = { type: 'finished', ...build.held, result };
    this.finished.set(key, frame);
    this.log.info('agent.job-finished', {
      queue,
      jobId,
      outcome: outcomeOf(result),
      exitCode: result.exitCode,
      signal: result.signal,
      durationMs: result.finishedAt - result.startedAt,
      ...(result.error !== undefined && { error: result.error }),
    });
    if (this.welcomed) {
      this.outbox.flush(queue, jobId);
      this.conn?.send(frame);
    }
    this.emit('job-finished', build.held, result);
    this.changes.notify();
  }

  /** Below its headroom the agent takes no builds; the master hears it at once, and again when space is back. */
  private onDiskChange(state: DiskState): void {
    this.emit('disk', state);
    if (this.welcomed) this.conn?.send(diskFrame(state));
    this.changes.notify();
  }

  private onCancel(queue: string, jobId: string, reason: string, report: boolean): void {
    const key = keyOf(queue, jobId);
    const build = this.running.get(key);
    if (build && report) {
      // The executor stays taken until the build's processes are gone; then its result goes
      // to the master like any other (onBuildResult).
      this.reportingCancel.add(build);
      build.cancel(reason);
      this.log.info('agent.job-cancelled', { queue, jobId, reason, graceMs: this.deps.killGraceMs ?? this.options.killGraceSec * 1000 });
      this.emit('job-cancelled', build.held, reason);
      return;
    }
    if (build) return this.dropBuild(build, reason);
    // Finished before the cancel came: its result, sent or about to be, is the report.
    if (report) return;
    if (this.finished.delete(key)) this.outbox.forget(queue, jobId);
    this.changes.notify();
  }

  private onAck(queue: string, jobId: string): void {
    if (!this.finished.delete(keyOf(queue, jobId))) return;
    this.outbox.forget(queue, jobId);
    this.log.debug('agent.job-acked', { queue, jobId });
    this.emit('job-acked', { queue, jobId });
    this.changes.notify();
  }

  /** Cancels a build and forgets it: the master will hear nothing more about it. */
  private dropBuild(build: Build, reason: string): void {
    const { queue, jobId } = build.held;
    this.running.delete(keyOf(queue, jobId));
    build.cancel(reason);
    this.outbox.forget(queue, jobId);
    this.log.info('agent.job-cancelled', { queue, jobId, reason });
    this.emit('job-cancelled', build.held, reason);
    this.changes.notify();
  }

  /**
   * Its machine is going away (or likely to): the master stops sending builds here at once.
   * Running builds carry on and use what is left of the two-minute window.
   */
  private onNotice(frame: NoticeFrame): void {
    this.notice = frame;
    this.log.warn('agent.notice-detected', { notice: frame.notice, action: frame.action, at: frame.at, running: this.running.size });
    this.emit('notice', frame);
    if (this.welcomed) this.conn?.send(frame);
  }

  private async doDrain(): Promise<void> {
    if (!this.exited || this.stopping) return this.shutdown();
    this.draining = true;
    this.log.info('agent.drain-requested', { running: this.running.size });
    this.emit('draining');
    if (this.welcomed) this.conn?.send({ type: 'draining' });
    await this.changes.waitFor(() => this.running.size === 0 || this.stopping);
    await this.changes.waitFor(() => this.finished.size === 0 || this.stopping, this.deps.ackWaitMs ?? 10_000);
    this.log.info('agent.drained', { unacknowledged: this.finished.size });
    this.emit('drained');
    await this.shutdown();
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    this.loopAbort.abort();
    this.changes.notify();
    this.conn?.close(1000, this.draining ? 'drained' : 'stopped');
    await this.exited?.catch(() => undefined);
  }
}

