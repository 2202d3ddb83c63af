import type { LaunchRequest, Machine, Provider, SuspendMode, SuspendOutcome } from '../provisioner';
import type { EventQueue } from './event-queue';

/** How long a pool's machines take until their agent registers, by way of coming up. */
export interface BootTimes {
  launchMs: number;
  wakeMs: number;
  resumeMs: number;
}

interface SimMachine extends Machine {
  /** Bumped by every suspend, so a boot still under way when the machine stopped never lands. */
  generation: number;
}

/**
 * A provider on simulated time: start and launch answer at once (as EC2's API calls do) and the
 * machine's agent comes up `BootTimes` later; suspend does what the mode asks, as the local
 * provider does for a machine whose agent runs.
 */
export class SimProvider implements Provider {
  readonly kind = 'ec2' as const;
  private readonly machines = new Map<string, SimMachine>();
  private readonly launches = new Map<string, string[]>();
  private seq = 0;

  constructor(
    private readonly pool: string,
    private readonly times: BootTimes,
    private readonly events: EventQueue,
    private readonly spot: boolean,
    /** The machine is up and its agent connects. */
    private readonly onUp: (id: string) => void,
    preCreated: number,
  ) {
    for (let i = 0; i < preCreated; i++) this.create('stopped');
  }

  async setup(): Promise<void> {}

  async list(): Promise<Machine[]> {
    return [...this.machines.values()].filter((m) => m.state !== 'terminated').map(({ generation: _g, ...m }) => m);
  }

  async start(ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      const m = this.machines.get(id);
      if (!m || m.state !== 'stopped') throw new Error(`cannot start ${id} in state ${m?.state ?? 'unknown'}`);
      this.boot(m, m.hibernated ? this.times.resumeMs : this.times.wakeMs);
      m.hibernated = false;
    }
  }

  async suspend(ids: readonly string[], mode: SuspendMode): Promise<SuspendOutcome[]> {
    return ids.map((id): SuspendOutcome => {
      const m = this.machines.get(id);
      if (!m) return { id, did: 'failed', reason: 'no such machine' };
      m.generation++;
      if (mode === 'terminate') {
        m.state = 'terminated';
        return { id, did: 'terminated', reason: null };
      }
      m.state = 'stopped';
      m.hibernated = mode === 'hibernate';
      return { id, did: m.hibernated ? 'hibernated' : 'stopped', reason: null };
    });
  }

  async launch(req: LaunchRequest): Promise<Machine[]> {
    let ids = this.launches.get(req.clientToken);
    if (!ids) {
      ids = Array.from({ length: req.count }, () => {
        const m = this.create('pending');
        this.boot(m, this.times.launchMs);
        return m.id;
      });
      this.launches.set(req.clientToken, ids);
    }
    const mine = new Set(ids);
    return (await this.list()).filter((m) => mine.has(m.id));
  }

  async terminate(ids: readonly string[]): Promise<void> {
    await this.suspend(ids, 'terminate');
  }

  async close(): Promise<void> {}

  private create(state: Machine['state']): SimMachine {
    const m: SimMachine = { id: `sim-${this.pool}-${++this.seq}`, state, privateIp: null, spot: this.spot, hibernated: false, launchedAt: this.events.now, generation: 0 };
    this.machines.set(m.id, m);
    return m;
  }

  private boot(m: SimMachine, ms: number): void {
    m.state = 'pending';
    const gen = m.generation;
    this.events.at(this.events.now + ms, () => {
      if (m.generation !== gen || m.state !== 'pending') return;
      m.state = 'running';
      this.onUp(m.id);
    });
  }
}
