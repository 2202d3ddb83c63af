import type { Backlog } from '../../src/provisioner';

type Snapshot = { waiting: number; prioritized: number; oldestWaitMs: number | null };

/** The queue monitor's numbers, from a map the test sets; an absent type has no snapshot yet. */
export class FakeBacklog implements Backlog {
  readonly byType = new Map<string, Snapshot>();

  /** `waiting` jobs of `type`, the oldest waiting `oldestWaitMs`. */
  set(type: string, waiting: number, oldestWaitMs: number | null = waiting > 0 ? 60_000 : null): this {
    this.byType.set(type, { waiting, prioritized: 0, oldestWaitMs });
    return this;
  }

  current(type: string): Snapshot | undefined {
    const s = this.byType.get(type);
    return s && { ...s };
  }
}
