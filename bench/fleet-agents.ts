/**
 * Fake agents for the fleet benchmark: the agent protocol over real websockets (hello,
 * heartbeats, started/finished for every assign), without running anything, so one process can
 * be a thousand agents and the master is what the figures measure. An agent can "suspend"
 * (disconnect) after a quiet period and be woken (reconnect after a boot delay): the bench's
 * stand-in for the provisioner, used to count instance-seconds under a placement policy.
 */
import WebSocket from 'ws';
import { PROTOCOL_VERSION, parseMasterFrame, type MasterFrame } from '../src/protocol';

export interface FakeAgentOptions {
  url: string;
  token: string;
  name: string;
  location: 'onprem' | 'cloud';
  jobType: string;
  executors: number;
  /** How long a "build" takes; 0 answers started and finished at once. */
  buildMs: number;
  /** Disconnect after this long without a build (the quiet period); undefined: never. */
  quietMs?: number;
}

export class FakeAgent {
  /** Jobs assigned to this agent, over all its connections. */
  jobs = 0;
  /** Milliseconds this agent was awake (booting or connected), closed intervals only. */
  awakeMs = 0;
  /** Times it was woken after a suspension. */
  wakes = 0;
  private ws: WebSocket | undefined;
  private awakeSince: number | undefined;
  private running = new Set<string>();
  private heartbeat: NodeJS.Timeout | undefined;
  private quiet: NodeJS.Timeout | undefined;
  /** The enqueue time each job carried, for enqueue -> assign waits. */
  readonly waits: number[] = [];

  constructor(readonly o: FakeAgentOptions) {}

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  get awake(): boolean {
    return this.awakeSince !== undefined;
  }

  get idle(): boolean {
    return this.connected && this.running.size < this.o.executors;
  }

  /** Connects and says hello; resolves once welcomed. `bootMs` is a simulated boot before connecting. */
  async connect(bootMs = 0): Promise<void> {
    this.awakeSince ??= Date.now();
    if (bootMs > 0) await new Promise((r) => setTimeout(r, bootMs));
    const ws = new WebSocket(this.o.url, { perMessageDeflate: false });
    this.ws = ws;
    await new Promise<void>((resolve, reject) => {
      ws.once('error', reject);
      ws.once('open', () =>
        ws.send(
          JSON.stringify({
            type: 'hello',
            protocol: PROTOCOL_VERSION,
            token: this.o.token,
            name: this.o.name,
            location: this.o.location,
            jobTypes: [this.o.jobType],
            executors: this.o.executors,
            os: 'linux',
            arch: 'x64',
            cpus: 2,
            memoryMb: 2048,
            labels: [],
            version: 'fleet-bench',
            running: [],
            finished: [],
            draining: false,
          }),
        ),
      );
      ws.on('message', (data) => {
        const parsed = parseMasterFrame(data.toString());
        if (!parsed.ok) return reject(new Error(`${this.o.name}: ${parsed.reason}`));
        this.onFrame(parsed.frame, resolve);
      });
      ws.once('close', (code, reason) => {
        this.stopTimers();
        reject(new Error(`${this.o.name}: closed ${code} ${reason.toString()}`));
      });
    });
    ws.removeAllListeners('error');
    ws.on('error', () => undefined);
    this.armQuiet();
  }

  /** Disconnects (a suspension); the awake time so far is counted. */
  async suspend(): Promise<void> {
    this.stopTimers();
    const ws = this.ws;
    this.ws = undefined;
    if (this.awakeSince !== undefined) this.awakeMs += Date.now() - this.awakeSince;
    this.awakeSince = undefined;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      const closed = new Promise<void>((r) => ws.once('close', () => r()));
      ws.close(1000, 'suspended');
      await closed;
    }
  }

  /** Wakes a suspended agent: boots for `bootMs`, then connects. */
  async wake(bootMs: number): Promise<void> {
    this.wakes++;
    await this.connect(bootMs);
  }

  private onFrame(f: MasterFrame, welcomed: () => void): void {
    switch (f.type) {
      case 'welcome':
        this.heartbeat = setInterval(() => this.send({ type: 'heartbeat', running: [...this.running] }), f.heartbeatMs);
        welcomed();
        return;
      case 'assign': {
        this.jobs++;
        const payload = f.payload as { env?: Record<string, string> };
        const enq = Number(payload.env?.ENQUEUED_AT);
        if (Number.isFinite(enq)) this.waits.push(Date.now() - enq);
        const held = { queue: f.queue, jobId: f.jobId, lockToken: f.lockToken };
        const startedAt = Date.now();
        this.send({ type: 'started', ...held, startedAt });
        const finish = () => {
          this.running.delete(f.jobId);
          this.send({ type: 'finished', ...held, result: { exitCode: 0, signal: null, timedOut: false, startedAt, finishedAt: Date.now() } });
          this.armQuiet();
        };
        this.running.add(f.jobId);
        clearTimeout(this.quiet);
        if (this.o.buildMs > 0) setTimeout(finish, this.o.buildMs);
        else finish();
        return;
      }
      default:
        return;
    }
  }

  private armQuiet(): void {
    clearTimeout(this.quiet);
    if (this.o.quietMs === undefined || this.running.size > 0) return;
    this.quiet = setTimeout(() => void this.suspend(), this.o.quietMs);
  }

  private stopTimers(): void {
    clearInterval(this.heartbeat);
    clearTimeout(this.quiet);
  }

  private send(frame: Record<string, unknown>): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }
}

/** Connects `agents` with at most `parallel` handshakes in flight (the master's accept queue is finite). */
export async function connectAll(agents: readonly FakeAgent[], parallel = 50): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < agents.length) await agents[next++]!.connect();
  };
  await Promise.all(Array.from({ length: Math.min(parallel, agents.length) }, worker));
}

/** How the jobs spread over the agents: how many were used, the busiest one's share. */
export function distribution(agents: readonly FakeAgent[]): { used: number; total: number; maxShare: number; busiest: string; p50: number; max: number } {
  const total = agents.reduce((s, a) => s + a.jobs, 0);
  const sorted = [...agents].sort((a, b) => b.jobs - a.jobs);
  const counts = sorted.map((a) => a.jobs).reverse();
  return {
    used: agents.filter((a) => a.jobs > 0).length,
    total,
    maxShare: total ? sorted[0]!.jobs / total : 0,
    busiest: sorted[0]?.o.name ?? '-',
    p50: counts[Math.floor(counts.length / 2)] ?? 0,
    max: sorted[0]?.jobs ?? 0,
  };
}
