import { promises as fs } from 'node:fs';
import { dirname } from 'node:path';
import { BackgroundLoop, type Clock, type Logger } from '../lib';
import type { AgentOptions } from '../config';
import type { DiskFrame } from '../protocol';
import type { ActionSupport } from './action-support';

const MIB = 1024 * 1024;

/** Whether the agent has the free space it keeps for itself; `path` is the shortest filesystem's. */
export interface DiskState {
  full: boolean;
  path: string;
  freeMb: number;
  minFreeMb: number;
}

export interface DiskHeadroomDeps {
  /** The work dir and the cache dir: their filesystems must each keep `minFreeMb` free. */
  paths: () => string[];
  minFreeMb: number;
  everyMs: number;
  /** Frees space by evicting from the local cache; returns the bytes freed. */
  trim: (bytes: number) => Promise<number>;
  /** Called when `full` flips. */
  onChange: (state: DiskState) => void;
  clock: Clock;
  log: Logger;
  /** Free bytes for unprivileged writers on `path`'s filesystem. @defaultValue statfs's bavail × bsize */
  freeBytes?: (path: string) => Promise<number>;
}

/**
 * Keeps headroom on the agent's filesystems: below `minFreeMb` the local cache evicts first
 * (it is only a cache), and when that is not enough the agent is full and takes no builds until
 * space is back. Builds past their disk limit are the executor's business; this guards against
 * everything else that eats the disk (many builds, other processes, the cache itself).
 */
export class DiskHeadroom {
  private current: DiskState;
  private readonly loop: BackgroundLoop;

  constructor(private readonly d: DiskHeadroomDeps) {
    this.current = { full: false, path: d.paths()[0] ?? '', freeMb: Number.NaN, minFreeMb: d.minFreeMb };
    this.loop = new BackgroundLoop({
      name: 'disk-headroom',
      everyMs: d.everyMs,
      run: async () => {
        await this.check();
      },
      clock: d.clock,
      log: d.log,
      errorEvent: 'agent.disk-check-failed',
    });
  }

  get state(): DiskState {
    return { ...this.current };
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** Measures now (and trims the cache when short); resolves with the state afterwards. */
  async check(): Promise<DiskState> {
    const minBytes = this.d.minFreeMb * MIB;
    let lowest = await this.lowest();
    if (lowest.free < minBytes) {
      const wanted = minBytes - lowest.free;
      const freed = await this.d.trim(wanted).catch((err: unknown) => {
        this.d.log.warn('agent.disk-check-failed', { error: String(err), while: 'trimming the cache' });
        return 0;
      });
      if (freed > 0) {
        this.d.log.info('agent.cache-trimmed', { path: lowest.path, wantedBytes: wanted, freedBytes: freed });
        lowest = await this.lowest();
      }
    }
    const next: DiskState = { full: lowest.free < minBytes, path: lowest.path, freeMb: Math.floor(lowest.free / MIB), minFreeMb: this.d.minFreeMb };
    const changed = next.full !== this.current.full;
    this.current = next;
    if (changed) {
      this.d.log[next.full ? 'warn' : 'info'](next.full ? 'agent.disk-full' : 'agent.disk-ok', { ...next });
      this.d.onChange(this.state);
    }
    return this.state;
  }

  private async lowest(): Promise<{ path: string; free: number }> {
    let lowest = { path: '', free: Number.POSITIVE_INFINITY };
    for (const path of this.d.paths()) {
      const free = await (this.d.freeBytes ?? statfsFree)(path);
      if (free < lowest.free) lowest = { path, free };
    }
    return lowest;
  }
}

/** A cache dir that does not exist yet will live on its nearest existing ancestor's filesystem. */
async function statfsFree(path: string): Promise<number> {
  for (let p = path; ; p = dirname(p)) {
    try {
      const st = await fs.statfs(p);
      return st.bavail * st.bsize;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || p === dirname(p)) throw err;
    }
  }
}

/** What the master is told: before the first measurement `freeMb` is unknown, sent as 0. */
export function diskFrame(s: DiskState): DiskFrame {
  return { type: 'disk', full: s.full, path: s.path, freeMb: Number.isFinite(s.freeMb) ? s.freeMb : 0, minFreeMb: s.minFreeMb };
}

/**
 * The agent's headroom on its work and cache filesystems, measured once before it returns (so
 * the first hello already tells a full agent) and then every `diskCheckSec`.
 */
export async function startHeadroom(
  o: Pick<AgentOptions, 'minFreeMb' | 'diskCheckSec'>,
  d: { workDir: string; actions: Pick<ActionSupport, 'cacheDir' | 'trimCache'>; clock: Clock; log: Logger },
  onChange: (state: DiskState) => void,
): Promise<DiskHeadroom> {
  const headroom = new DiskHeadroom({
    paths: () => [d.workDir, d.actions.cacheDir],
    minFreeMb: o.minFreeMb,
    everyMs: o.diskCheckSec * 1000,
    trim: (bytes) => d.actions.trimCache(bytes),
    onChange,
    clock: d.clock,
    log: d.log,
  });
  await headroom.check().catch((err: unknown) => d.log.warn('agent.disk-check-failed', { error: String(err) }));
  headroom.start();
  return headroom;
}
