import WebSocket from 'ws';
import type { HelloFrame, MasterFrame } from '../../src/protocol';
import { helloFrameFor } from './hello-frame';

/** A hand-driven agent connection: every frame it gets, and how its connection ended. */
export class RawAgent {
  readonly frames: MasterFrame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: Array<() => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => {
      this.frames.push(JSON.parse(d.toString()) as MasterFrame);
      this.waiters.splice(0).forEach((w) => w());
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  /** Connects and says hello; resolves once welcomed or closed. */
  static async connect(url: string, hello: Partial<HelloFrame>, options: WebSocket.ClientOptions = {}): Promise<RawAgent> {
    const a = new RawAgent(new WebSocket(url, options));
    a.ws.on('open', () => a.ws.send(JSON.stringify(helloFrameFor(hello))));
    await Promise.race([a.next('welcome'), a.closed]);
    return a;
  }

  get welcomed(): boolean {
    return this.frames.some((f) => f.type === 'welcome');
  }

  /** The first frame of `type` (already received or future). */
  async next<T extends MasterFrame['type']>(type: T): Promise<Extract<MasterFrame, { type: T }>> {
    return (await this.all(type, 1))[0]!;
  }

  /** Resolves once `n` frames of `type` arrived, with them. */
  async all<T extends MasterFrame['type']>(type: T, n: number): Promise<Array<Extract<MasterFrame, { type: T }>>> {
    for (;;) {
      const got = this.frames.filter((x): x is Extract<MasterFrame, { type: T }> => x.type === type);
      if (got.length >= n) return got;
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  send(frame: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(frame));
  }
}
