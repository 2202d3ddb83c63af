import { fork, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { StoreHost, type ConnectionTarget, type DiskStore, type ToWorker } from '../cas';
import type { Clock, Logger } from '../lib';
import { workerNotice, type WorkerInit } from './cache-worker-messages';

/** Options of {@link CacheWorkers}. */
export interface CacheWorkersOptions {
  count: number;
  disk: DiskStore;
  /** The settings every worker gets, less its index. */
  init: Omit<WorkerInit, 't' | 'index'>;
  clock: Clock;
  log: Logger;
  /** @defaultValue dist/src/cli/cache-worker.js next to this file */
  script?: string;
}

/** A worker that died is started again after this long, so a crash loop costs little. */
const RESTART_MS = 1000;

class Worker implements ConnectionTarget {
  ready = false;
  constructor(readonly child: ChildProcess) {}

  take(socket: Socket, head: Buffer): boolean {
    if (!this.ready || !this.child.connected) return false;
    // The raw handle moves to the worker, and what the master already read of it goes along.
    // Not the net.Socket: node would keep it here until the send, and a socket that still has
    // its handle reads again on its own (stream read-ahead), into bytes the worker never gets.
    const handle = (socket as unknown as { _handle: { close(): void } | null })._handle;
    if (!handle) return false;
    (socket as unknown as { _handle: null })._handle = null;
    socket.destroy();
    this.child.send({ t: 'conn', head: head.toString('base64') }, handle as unknown as Socket, () => handle.close());
    return true;
  }
}

/**
 * The cache worker processes of `cas.workers`: started after the master's HTTP listener, each
 * attached to one {@link StoreHost} over its IPC channel, started again when one dies, and
 * offered to the {@link CacheConnectionRouter} only while ready. With none ready, the master
 * serves cache connections itself.
 */
export class CacheWorkers {
  private readonly workers: Worker[] = [];
  private readonly host: StoreHost;
  private stopping = false;
  private live: readonly Worker[] = [];

  constructor(private readonly opts: CacheWorkersOptions) {
    this.host = new StoreHost(opts.disk, opts.log);
  }

  /** Resolves once every worker is ready (or has failed, which is logged and retried). */
  async start(): Promise<void> {
    await Promise.all(Array.from({ length: this.opts.count }, (_, i) => this.spawn(i)));
  }

  /** The ready workers, for the connection router. */
  targets = (): readonly ConnectionTarget[] => this.live;

  async stop(): Promise<void> {
    this.stopping = true;
    const exits = this.workers.map((w) => (w.child.exitCode === null && w.child.signalCode === null ? new Promise((r) => w.child.once('exit', r)) : Promise.resolve()));
    for (const w of this.workers) w.child.kill('SIGTERM');
    const ac = new AbortController();
    await Promise.race([Promise.all(exits), this.opts.clock.sleep(5000, ac.signal).catch(() => undefined)]);
    ac.abort();
    for (const w of this.workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
  }

  private spawn(index: number): Promise<void> {
    const child = fork(this.opts.script ?? join(__dirname, 'cache-worker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
    const worker = new Worker(child);
    this.workers[index] = worker;
    const detach = this.host.attach({
      send: (m: ToWorker) => {
        if (child.connected) child.send(m);
      },
      onMessage: (listener) => child.on('message', (m: { t?: string }) => m.t !== 'ready' && m.t !== 'log' && listener(m)),
    });
    return new Promise((resolve) => {
      child.on('message', (raw) => {
        const notice = workerNotice.safeParse(raw);
        if (!notice.success) return;
        if (notice.data.t === 'log') this.opts.log[notice.data.level](notice.data.event, notice.data.fields);
        else {
          worker.ready = true;
          this.refresh();
          this.opts.log.info('cas.worker-started', { cacheWorker: index, pid: child.pid });
          resolve();
        }
      });
      child.once('error', (err) => this.opts.log.error('cas.worker-failed', { cacheWorker: index, err: err.message }));
      child.once('exit', (code, signal) => {
        worker.ready = false;
        detach();
        this.refresh();
        resolve();
        if (this.stopping) return;
        this.opts.log.warn('cas.worker-exited', { cacheWorker: index, code, signal, restartInMs: RESTART_MS });
        void this.opts.clock.sleep(RESTART_MS).then(() => {
          if (!this.stopping) return this.spawn(index);
        });
      });
      child.send({ t: 'init', index, ...this.opts.init });
    });
  }

  private refresh(): void {
    this.live = this.workers.filter((w) => w.ready);
  }
}
