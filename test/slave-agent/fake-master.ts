import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { parseAgentFrame, type AgentFrame, type MasterFrame } from '../../src/protocol';

type FrameOf<T extends AgentFrame['type']> = Extract<AgentFrame, { type: T }>;

/** One agent connection as the master sees it; every frame is checked against the schema. */
export class MasterSide {
  readonly frames: AgentFrame[] = [];
  readonly invalid: string[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly taken = new Set<number>();
  private waiters: Array<() => void> = [];

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const parsed = parseAgentFrame(String(data));
      if (parsed.ok) this.frames.push(parsed.frame);
      else this.invalid.push(parsed.reason);
      this.wake();
    });
    this.closed = new Promise((resolve) =>
      ws.once('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        this.wake();
      }),
    );
  }

  /** The next frame of this type not taken before, waiting for it if need be. */
  async take<T extends AgentFrame['type']>(type: T, where: (f: FrameOf<T>) => boolean = () => true): Promise<FrameOf<T>> {
    for (;;) {
      const i = this.frames.findIndex((f, n) => !this.taken.has(n) && f.type === type && where(f as FrameOf<T>));
      if (i >= 0) {
        this.taken.add(i);
        return this.frames[i] as FrameOf<T>;
      }
      if (this.ws.readyState !== this.ws.OPEN) throw new Error(`connection closed while waiting for a "${type}" frame`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  of<T extends AgentFrame['type']>(type: T): Array<FrameOf<T>> {
    return this.frames.filter((f): f is FrameOf<T> => f.type === type);
  }

  send(frame: MasterFrame | string): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  welcome(opts: { heartbeatMs?: number; reattached?: Array<{ queue: string; jobId: string }> } = {}): void {
    this.send({ type: 'welcome', agentId: 'agent-id-1', heartbeatMs: opts.heartbeatMs ?? 60_000, reattached: opts.reattached ?? [] });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }
}

/** A websocket server on port 0 standing in for the master's agent listener. */
export class FakeMaster {
  readonly connections: MasterSide[] = [];
  /** While set, new connections are closed at once with this code. */
  refuseWith: number | undefined;
  private waiters: Array<() => void> = [];

  private constructor(private readonly wss: WebSocketServer) {
    wss.on('connection', (ws) => {
      if (this.refuseWith !== undefined) return ws.close(this.refuseWith, 'refused by test');
      this.connections.push(new MasterSide(ws));
      const w = this.waiters;
      this.waiters = [];
      w.forEach((f) => f());
    });
  }

  static async start(): Promise<FakeMaster> {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await once(wss, 'listening');
    return new FakeMaster(wss);
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}`;
  }

  /** The n-th accepted connection (0-based), once it exists. */
  async connection(n: number): Promise<MasterSide> {
    while (this.connections.length <= n) await new Promise<void>((r) => this.waiters.push(r));
    return this.connections[n] as MasterSide;
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
