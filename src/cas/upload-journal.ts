import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { writeSyncedFile } from './synced-file';
import { isHash } from './digest';
import { OBJECT_KINDS, type ObjectKind } from './object-keys';

/** A pending upload as the journal holds it; `since` is when it was first queued (ms). */
export interface JournalEntry {
  kind: ObjectKind;
  hash: string;
  since: number;
}

/**
 * The S3 tier's upload queue on disk: one file per pending upload, `<kind>.<hash>`, created
 * (and its directory entry fsynced) before the PUT that caused it is answered, removed once S3
 * holds the object. A master that restarts replays whatever is left, so no acknowledged write
 * is lost to a crash. Action-cache entries keep their bytes in the file (they are small and
 * may be replaced locally before the upload runs); a CAS blob's file is empty, its bytes are
 * read from the local store at upload time.
 */
export class UploadJournal {
  private constructor(private readonly dir: string) {}

  static async open(dir: string): Promise<UploadJournal> {
    await fsp.mkdir(dir, { recursive: true });
    // Half-written entries of a crash: their PUT was never answered, so nothing owes them.
    for (const name of await fsp.readdir(dir)) if (name.startsWith('tmp.')) await fsp.rm(path.join(dir, name), { force: true });
    return new UploadJournal(dir);
  }

  /** Every pending upload, oldest first; names that are not entries are ignored. */
  async load(): Promise<JournalEntry[]> {
    const out: JournalEntry[] = [];
    for (const name of await fsp.readdir(this.dir)) {
      const entry = parseName(name);
      if (!entry) continue;
      const st = await fsp.stat(path.join(this.dir, name));
      out.push({ ...entry, since: st.mtimeMs });
    }
    return out.sort((a, b) => a.since - b.since);
  }

  /** Durably records `kind/hash` (with `bytes` for an action-cache entry), replacing an older record. */
  async add(kind: ObjectKind, hash: string, bytes: Buffer = Buffer.alloc(0)): Promise<void> {
    const tmp = path.join(this.dir, `tmp.${randomBytes(8).toString('hex')}`);
    await writeSyncedFile(tmp, bytes);
    await fsp.rename(tmp, this.file(kind, hash));
    const dh = await fsp.open(this.dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }

  /** The bytes recorded with `kind/hash`, or undefined when there is no such entry. */
  async read(kind: ObjectKind, hash: string): Promise<Buffer | undefined> {
    try {
      return await fsp.readFile(this.file(kind, hash));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Forgets an uploaded entry. Not fsynced: a removal lost to a crash only uploads it once more. */
  async remove(kind: ObjectKind, hash: string): Promise<void> {
    await fsp.rm(this.file(kind, hash), { force: true });
  }

  private file(kind: ObjectKind, hash: string): string {
    return path.join(this.dir, `${kind}.${hash}`);
  }
}

function parseName(name: string): { kind: ObjectKind; hash: string } | undefined {
  const dot = name.lastIndexOf('.');
  const kind = name.slice(0, dot) as ObjectKind;
  const hash = name.slice(dot + 1);
  return OBJECT_KINDS.includes(kind) && isHash(hash) ? { kind, hash } : undefined;
}
