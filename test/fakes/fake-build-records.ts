import { finishedRecord, type BuildEnding, type BuildIdentity, type BuildRecord, type BuildRecords } from '../../src/master/build-store';

/** Build records in memory, with the store's shapes; enough for the dispatcher's unit tests. */
export class FakeBuildRecords implements BuildRecords {
  readonly records = new Map<string, BuildRecord>();
  readonly logs = new Map<string, string>();
  private readonly preempted = new Map<string, number>();

  private key = (type: string, id: string, attempt: number) => `${type}:${id}:${attempt}`;

  async started(b: BuildIdentity, startedAt: number): Promise<void> {
    this.records.set(this.key(b.type, b.id, b.attempt), {
      ...b,
      state: 'running',
      startedAt,
      finishedAt: null,
      waitMs: Math.max(0, startedAt - b.queuedAt),
      durationMs: null,
      result: null,
      exitCode: null,
      signal: null,
      reason: null,
      logBytes: 0,
    });
  }

  async finished(b: BuildIdentity, f: BuildEnding): Promise<BuildRecord> {
    const rec = finishedRecord(b, f, (this.logs.get(this.key(b.type, b.id, b.attempt)) ?? '').length);
    this.records.set(this.key(b.type, b.id, b.attempt), rec);
    return rec;
  }

  async preemptions(type: string, id: string): Promise<number> {
    return this.preempted.get(`${type}:${id}`) ?? 0;
  }

  async countPreemption(type: string, id: string, delta: 1 | -1): Promise<void> {
    this.preempted.set(`${type}:${id}`, (this.preempted.get(`${type}:${id}`) ?? 0) + delta);
  }

  async appendLog(type: string, id: string, attempt: number, data: string, offset?: number, _at?: number): Promise<number> {
    const k = this.key(type, id, attempt);
    const stored = Buffer.from(this.logs.get(k) ?? '');
    const skip = offset === undefined ? 0 : Math.max(0, stored.length - offset);
    const next = Buffer.concat([stored, Buffer.from(data).subarray(skip)]);
    this.logs.set(k, next.toString());
    return next.length;
  }

  async get(type: string, id: string, attempt: number): Promise<BuildRecord | undefined> {
    return this.records.get(this.key(type, id, attempt));
  }

  async attempts(type: string, id: string): Promise<BuildRecord[]> {
    return [...this.records.values()].filter((r) => r.type === type && r.id === id).sort((a, b) => a.attempt - b.attempt);
  }
}
