/**
 * Simulated time: a min-heap of callbacks by (time, insertion order), so events at the same
 * moment run in the order they were scheduled and every run of a trace is the same.
 */
export class EventQueue {
  private heap: Array<{ at: number; seq: number; run: () => void }> = [];
  private seq = 0;
  now: number;

  constructor(start: number) {
    this.now = start;
  }

  get size(): number {
    return this.heap.length;
  }

  /** Schedules `run` at `at` (never before now). */
  at(at: number, run: () => void): void {
    const e = { at: Math.max(at, this.now), seq: this.seq++, run };
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  nextAt(): number | undefined {
    return this.heap[0]?.at;
  }

  /** Advances the clock to the earliest event and runs every event due then (and those they schedule for then). */
  runNext(): void {
    const at = this.nextAt();
    if (at === undefined) return;
    this.now = at;
    while (this.heap.length && this.heap[0]!.at === at) this.pop().run();
  }

  private pop(): { at: number; seq: number; run: () => void } {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l]!, h[m]!)) m = l;
        if (r < h.length && less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

const less = (a: { at: number; seq: number }, b: { at: number; seq: number }) => a.at < b.at || (a.at === b.at && a.seq < b.seq);
