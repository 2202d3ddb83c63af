/** One connection's reads, as the budget sees them (a websocket's `pause()` / `resume()`). */
export interface ReadFlow {
  pause(reason: PauseReason): void;
  resume(): void;
}

export interface IngestBudgetOptions {
  /** Frames one connection may have received and not yet processed before its reads pause. */
  framesPerConnection: number;
  /** Bytes of such frames over all connections before the reads of a connection sending more pause. */
  maxBytes: number;
}

/** Why a connection's reads paused: its own backlog, or everyone's. */
export type PauseReason = 'connection' | 'total';

/**
 * Bounds what the agent listener holds received but unprocessed. A frame counts from its
 * arrival until its handler's work settles (for a result, until Redis has it). A connection at
 * its frame limit, or one sending while the total is over the byte budget, stops being read:
 * its further frames wait in its socket's buffers (the kernel's, then the agent's), which
 * TCP's flow control keeps bounded. Frames already read when the pause comes are still
 * handled, so a connection may go over by what one socket read held.
 */
export class IngestBudget {
  private held = 0;
  /** Lanes paused while the total was over the budget, in the order they paused. */
  private readonly starved = new Set<IngestLane>();

  constructor(readonly options: IngestBudgetOptions) {}

  /** Bytes received and not yet processed, over all connections. */
  get heldBytes(): number {
    return this.held;
  }

  lane(flow: ReadFlow): IngestLane {
    return new IngestLane(this, flow);
  }

  /** @internal */
  overTotal(): boolean {
    return this.held >= this.options.maxBytes;
  }

  /** @internal */
  add(bytes: number): void {
    this.held += bytes;
  }

  /** @internal */
  remove(bytes: number, lane: IngestLane): void {
    const wasOver = this.overTotal();
    this.held -= bytes;
    lane.resumeIfUnder();
    if (!wasOver || this.overTotal()) return;
    for (const l of [...this.starved]) {
      if (this.overTotal()) break;
      l.resumeIfUnder();
    }
  }

  /** @internal */
  starve(lane: IngestLane, starved: boolean): void {
    if (starved) this.starved.add(lane);
    else this.starved.delete(lane);
  }
}

/** One connection's share of the budget. */
export class IngestLane {
  private frameCount = 0;
  private byteCount = 0;
  private isPaused = false;
  private closed = false;

  constructor(
    private readonly budget: IngestBudget,
    private readonly flow: ReadFlow,
  ) {}

  get frames(): number {
    return this.frameCount;
  }

  get bytes(): number {
    return this.byteCount;
  }

  get paused(): boolean {
    return this.isPaused;
  }

  /**
   * Counts a frame that just arrived; returns what to call once it is processed (extra calls
   * do nothing).
   */
  take(bytes: number): () => void {
    if (this.closed) return () => undefined;
    this.frameCount++;
    this.byteCount += bytes;
    this.budget.add(bytes);
    if (!this.isPaused) {
      if (this.frameCount >= this.budget.options.framesPerConnection) this.pause('connection');
      else if (this.budget.overTotal()) this.pause('total');
    }
    let done = false;
    return () => {
      if (done || this.closed) return;
      done = true;
      this.frameCount--;
      this.byteCount -= bytes;
      this.budget.remove(bytes, this);
    };
  }

  /** The connection is gone: what it held no longer counts, and it is never resumed. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.budget.starve(this, false);
    const bytes = this.byteCount;
    this.frameCount = 0;
    this.byteCount = 0;
    this.isPaused = false;
    this.budget.remove(bytes, this);
  }

  /** @internal */
  resumeIfUnder(): void {
    if (!this.isPaused || this.closed) return;
    if (this.frameCount >= this.budget.options.framesPerConnection || this.budget.overTotal()) return;
    this.isPaused = false;
    this.budget.starve(this, false);
    this.flow.resume();
  }

  private pause(reason: PauseReason): void {
    this.isPaused = true;
    this.budget.starve(this, true);
    this.flow.pause(reason);
  }
}
