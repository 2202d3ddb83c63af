import * as path from 'node:path';
import type { Logger } from '../lib';
import type { DiskStore } from './disk-store';
import { toOwner, type StoreChannel, type StoreRequest, type ToWorker } from './store-messages';

/**
 * Serves the disk store's index to cache workers: they read and write blob files themselves
 * and ask here for what only the index owner may decide (what exists, room for an upload, the
 * commit, removals), so there is one LRU order, one size account and one eviction for all
 * processes. Blobs that leave the store are announced to every worker in one batch per tick.
 */
export class StoreHost {
  private readonly channels = new Set<StoreChannel<ToWorker>>();
  private gone: string[] = [];
  private readonly tmpDir: string;

  constructor(
    private readonly disk: DiskStore,
    private readonly log: Logger,
  ) {
    this.tmpDir = path.dirname(disk.tempPath());
    disk.onRemoved((hash) => {
      if (this.gone.length === 0) setImmediate(() => this.announceGone());
      this.gone.push(hash);
    });
  }

  /** Starts answering `channel`; `detach` when its worker is gone. */
  attach(channel: StoreChannel<ToWorker>): () => void {
    this.channels.add(channel);
    channel.onMessage((raw) => {
      const parsed = toOwner.safeParse(raw);
      if (!parsed.success) {
        this.log.error('cas.worker-bad-message', { problem: parsed.error.issues[0]?.message });
        return;
      }
      const m = parsed.data;
      if (m.t === 'touch') for (const h of m.hashes) this.disk.touch(h);
      else if (m.t === 'verified') this.disk.markVerified(m.hash);
      else if (m.t === 'release') this.disk.release(m.bytes);
      else {
        this.answer(m.req).then(
          (value) => channel.send({ t: 'reply', id: m.id, ok: true, value: value ?? null }),
          (err: Error & { code?: string }) => channel.send({ t: 'reply', id: m.id, ok: false, code: err.code ?? 'SPILLWAY_E_INTERNAL', message: err.message }),
        );
      }
    });
    return () => this.channels.delete(channel);
  }

  private async answer(req: StoreRequest): Promise<unknown> {
    switch (req.op) {
      case 'lookup':
        return this.disk.lookup(req.hash);
      case 'corrupt':
        return this.disk.reportCorrupt(req.expected, req.actual);
      case 'missing':
        return this.disk.reportMissing(req.hash);
      case 'reserve':
        return this.disk.reserve(req.size, req.hash);
      case 'commit':
        // Only a file of the store's own upload dir may be renamed into the store.
        if (path.dirname(path.resolve(req.tmp)) !== this.tmpDir) throw new Error(`not an upload of this store: ${req.tmp}`);
        return this.disk.commitTemp(req.tmp, req.digest, req.reservation);
      case 'has':
        return this.disk.has(req.digest);
      case 'sizeOf':
        return this.disk.sizeOf(req.hash);
      case 'findMissing':
        return this.disk.findMissing(req.digests);
      case 'delete':
        return this.disk.delete(req.hash);
    }
  }

  private announceGone(): void {
    const hashes = this.gone;
    this.gone = [];
    for (const c of this.channels) c.send({ t: 'gone', hashes });
  }
}
