import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Logger } from '../lib';

/**
 * When a stored blob reaches the disk (`cas.fsync`):
 * - `before-answer`: the PUT is answered once the blob's file and its directory entry are
 *   fsynced; a 200 means the blob survives a power loss.
 * - `background`: the PUT is answered after the rename; the file and its directory are fsynced
 *   in a group at most `windowMs` later. A power loss (not a process crash: the page cache
 *   outlives the process) can lose the blobs answered in that window.
 */
export type FsyncMode = 'before-answer' | 'background';
export const FSYNC_MODES: readonly FsyncMode[] = ['before-answer', 'background'];

/**
 * The syscalls that commit a blob (its rename, then the fsyncs), injectable so tests can watch
 * their order, fail them, or kill the process between them.
 */
export interface CommitFs {
  rename(from: string, to: string): Promise<void>;
  /** fsync(2) of a blob's file: its open upload handle (closed afterwards by BlobSync), or its path. */
  fsyncFile(file: FileHandle | string): Promise<void>;
  fsyncDir(dir: string): Promise<void>;
}

async function fsyncPath(file: string): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await fsp.open(file, 'r');
  } catch (err) {
    // Deleted or evicted before its group came: nothing of it is left to make durable.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export const realCommitFs: CommitFs = {
  rename: (from, to) => fsp.rename(from, to),
  fsyncFile: (file) => (typeof file === 'string' ? fsyncPath(file) : file.sync()),
  fsyncDir: fsyncPath,
};

/** Options of {@link BlobSync}. */
export interface BlobSyncOptions {
  mode: FsyncMode;
  /** In `background` mode, the longest a renamed blob waits for its group's fsync. @defaultValue 20 */
  windowMs?: number;
  /** @defaultValue the real fsync(2) */
  fs?: CommitFs;
  /**
   * Synced with every group, alongside its files: the store's index log, whose lines for the
   * group's blobs were written before their renames (else a power loss could keep a blob's
   * file and lose the line that makes it findable). @defaultValue nothing
   */
  alongside?: () => Promise<void>;
  log: Logger;
}

interface Pending {
  file: FileHandle | string;
  dir: string;
  done: () => void;
  failed: (err: Error) => void;
}

/**
 * Makes renamed blobs durable in groups: every file of a group is fsynced (side by side), then
 * each directory the group renamed into once, so concurrent PUTs share the directory syncs and
 * a PUT arriving while a group syncs joins the next one instead of queueing its own.
 *
 * A blob is handed over right after its rename, with its still-open upload handle when the
 * renaming process wrote it (else its path, opened for the fsync): fsync of the renamed file
 * makes its data durable (on ext4 also the rename, which the same journal commit carries), the
 * directory's fsync its name on any filesystem. A handle belongs to this object from then on.
 */
export class BlobSync {
  private queue: Pending[] = [];
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly fs: CommitFs;
  private readonly windowMs: number;

  constructor(private readonly opts: BlobSyncOptions) {
    this.fs = opts.fs ?? realCommitFs;
    this.windowMs = opts.windowMs ?? 20;
  }

  get mode(): FsyncMode {
    return this.opts.mode;
  }

  /** Blobs renamed but not yet fsynced. */
  get pending(): number {
    return this.queue.length;
  }

  /**
   * Takes over `file` (the blob's, already renamed into `dir`); resolves when the PUT may be
   * answered: after its group's fsyncs in `before-answer` mode, at once in `background`.
   */
  settle(file: FileHandle | string, dir: string): Promise<void> {
    const synced = new Promise<void>((done, failed) => this.queue.push({ file, dir, done, failed }));
    if (this.opts.mode === 'background') {
      synced.catch(() => undefined);
      if (!this.timer && !this.running) this.timer = setTimeout(() => this.kick(), this.windowMs);
      return Promise.resolve();
    }
    this.kick();
    return synced;
  }

  /** Syncs everything handed over so far (on SIGTERM and close: nothing answered stays unsynced). */
  async flush(): Promise<void> {
    while (this.running || this.queue.length > 0) {
      this.kick();
      await this.running;
    }
  }

  private kick(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running || this.queue.length === 0) return;
    const group = this.queue;
    this.queue = [];
    this.running = this.syncGroup(group).finally(() => {
      this.running = undefined;
      if (this.queue.length === 0) return;
      if (this.opts.mode === 'before-answer') this.kick();
      else this.timer = setTimeout(() => this.kick(), this.windowMs);
    });
  }

  private async syncGroup(group: Pending[]): Promise<void> {
    const [index, ...files] = await Promise.allSettled([this.opts.alongside?.(), ...group.map((p) => this.fs.fsyncFile(p.file))]);
    const dirs = [...new Set(group.map((p) => p.dir))];
    const dirResults = new Map<string, PromiseSettledResult<void>>();
    (await Promise.allSettled(dirs.map((d) => this.fs.fsyncDir(d)))).forEach((r, i) => dirResults.set(dirs[i]!, r));
    await Promise.allSettled(group.map((p) => (typeof p.file === 'string' ? undefined : p.file.close())));
    group.forEach((p, i) => {
      const file = files[i]!;
      const dir = dirResults.get(p.dir)!;
      const failure = [file, dir, index!].find((r) => r.status === 'rejected')?.reason as unknown;
      if (failure === undefined) return p.done();
      const err = failure instanceof Error ? failure : new Error(String(failure));
      this.opts.log.error('cas.sync-failed', { mode: this.opts.mode, dir: p.dir, err: err.message });
      p.failed(err);
    });
  }
}
