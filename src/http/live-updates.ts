import type { ServerResponse } from 'node:http';
import { BackgroundLoop, type Clock, type Logger } from '../lib';

export interface LiveUpdatesOptions {
  /** Builds the state pushed to every page; called once per push, however many pages listen. */
  snapshot: () => Promise<unknown>;
  clock: Clock;
  log: Logger;
  /** Changes closer together than this are pushed as one. @defaultValue 250 */
  debounceMs?: number;
  /** Pushed at least this often while pages listen (ages move; other masters change things). @defaultValue 5000 */
  refreshMs?: number;
}

/**
 * Server-sent events for the dashboard: every page gets the whole overview at once and again
 * after each change (debounced) and periodically. Whole snapshots rather than deltas keep the
 * page simple and a reconnecting page (EventSource retries by itself) correct at once.
 */
export class LiveUpdates {
  private readonly clients = new Set<ServerResponse>();
  private readonly abort = new AbortController();
  private timer: Promise<void> | undefined;
  private dirty = false;
  private pushing: Promise<void> | undefined;
  private lastPush = 0;
  /** Runs only while pages listen; a new one starts with the next page after it ended. */
  private refresh: BackgroundLoop | undefined;

  constructor(private readonly opts: LiveUpdatesOptions) {}

  get listeners(): number {
    return this.clients.size;
  }

  /** Takes over `res` as an event stream until the client goes away or `close()`. */
  attach(res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      // Proxies (nginx) would otherwise buffer the stream and the page would see nothing.
      'x-accel-buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    this.clients.add(res);
    res.on('close', () => this.clients.delete(res));
    void this.snapshotTo([res]);
    this.ensureRefresh();
  }

  /** Something the page shows changed: push soon (at most one push per debounce interval). */
  changed(): void {
    if (this.clients.size === 0 || this.abort.signal.aborted) return;
    this.dirty = true;
    if (this.timer) return;
    const wait = Math.max(0, (this.opts.debounceMs ?? 250) - (this.opts.clock.now() - this.lastPush));
    this.timer = this.opts.clock.sleep(wait, this.abort.signal).then(
      () => {
        this.timer = undefined;
        if (this.dirty) void this.push();
      },
      () => undefined,
    );
  }

  close(): void {
    this.abort.abort();
    void this.refresh?.stop();
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  private async push(): Promise<void> {
    if (this.pushing) return; // the running push's end re-checks `dirty`
    this.dirty = false;
    this.lastPush = this.opts.clock.now();
    this.pushing = this.snapshotTo([...this.clients]);
    await this.pushing;
    this.pushing = undefined;
    if (this.dirty) this.changed();
  }

  private async snapshotTo(targets: ServerResponse[]): Promise<void> {
    if (targets.length === 0) return;
    let data: string;
    try {
      data = JSON.stringify(await this.opts.snapshot());
    } catch (err) {
      this.opts.log.warn('dashboard.snapshot-failed', { error: err });
      return;
    }
    for (const res of targets) if (!res.writableEnded) res.write(`event: overview\ndata: ${data}\n\n`);
  }

  private ensureRefresh(): void {
    if (this.refresh || this.abort.signal.aborted) return;
    const loop = new BackgroundLoop({
      name: 'dashboard-refresh',
      everyMs: this.opts.refreshMs ?? 5000,
      clock: this.opts.clock,
      log: this.opts.log,
      errorEvent: 'dashboard.snapshot-failed',
      run: async () => {
        if (this.clients.size === 0) {
          this.refresh = undefined;
          return 'done';
        }
        this.dirty = true;
        await this.push();
      },
    });
    this.refresh = loop;
    loop.start();
  }
}
