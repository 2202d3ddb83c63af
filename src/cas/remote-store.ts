import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { SpillwayError } from '../lib';
import type { BlobReader, BlobStore, ExpectedBlob, PutResult, Source } from './blob-store';
import { EMPTY_DIGEST, type Digest } from './digest';
import { BadDigestError, BlobTooLargeError, CasFullError, DigestMismatchError } from './errors';
import { checkExpected, checkHash, writeExpectedTemp } from './hashed-temp-file';
import { toWorker, type StoreChannel, type StoreRequest, type ToOwner } from './store-messages';
import { VerifiedReads } from './verified-reads';

/** Options of {@link RemoteStore}. */
export interface RemoteStoreOptions {
  /** The disk store's root, shared with the owner: blobs under `cas/`, uploads under `tmp/`. */
  root: string;
  channel: StoreChannel<ToOwner>;
  /** As the disk store's option of the same name. @defaultValue 64 MiB */
  verifyFirstMaxBytes?: number;
}

const ERRORS: Record<string, new (message: string) => SpillwayError> = {
  SPILLWAY_E_CAS_DIGEST_MISMATCH: DigestMismatchError,
  SPILLWAY_E_CAS_BAD_DIGEST: BadDigestError,
  SPILLWAY_E_CAS_FULL: CasFullError,
  SPILLWAY_E_CAS_TOO_LARGE: BlobTooLargeError,
};

/** Touches are sent in batches: a hot hit must not cost a message of its own. */
const TOUCH_FLUSH_MS = 20;
/**
 * Bounds on what a worker remembers per blob. Forgetting is always safe: a blob not known
 * present is looked up again, one not known verified is hashed again.
 */
const REMEMBERED_MAX = 262_144;
/**
 * Uploads up to this size are written without first asking the owner for room (a round trip
 * per PUT); the owner's commit reserves it. Bounds what the store can overshoot `maxBytes` by
 * while they are written: this much per concurrent upload.
 */
const UNRESERVED_MAX_BYTES = 4 * 1024 * 1024;

/**
 * The disk store as a cache worker sees it: blob files are read (verified as the disk store
 * does) and uploads written and hashed in this process, while every decision the index owns
 * (what exists, room, the commit, removal) is asked of the owner over `channel`. Errors of the
 * owner arrive as the same error classes, so the HTTP routes answer the same statuses.
 */
export class RemoteStore implements BlobStore {
  private nextId = 0;
  private readonly calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  /** Blobs this worker saw present and has not been told are gone: what `touch` may vouch for. */
  private readonly present = new Set<string>();
  private readonly verified = new Set<string>();
  private touches = new Set<string>();
  private readonly reads: VerifiedReads;
  private closed: Error | undefined;

  constructor(private readonly opts: RemoteStoreOptions) {
    this.reads = new VerifiedReads(
      {
        blobPath: (hash) => path.join(opts.root, 'cas', hash.slice(0, 2), hash),
        corrupt: async (expected, actual) => {
          this.forgetLocally(expected.hash);
          await this.call({ op: 'corrupt', expected, actual: { hash: actual.hash.slice(0, 80), size: actual.size } });
        },
        missing: async (hash) => {
          this.forgetLocally(hash);
          await this.call({ op: 'missing', hash });
        },
        verified: (hash) => {
          remember(this.verified, hash);
          opts.channel.send({ t: 'verified', hash });
        },
      },
      opts.verifyFirstMaxBytes ?? 64 * 1024 * 1024,
    );
    opts.channel.onMessage((raw) => this.receive(raw));
  }

  /** Fails every call in flight and every later one: the owner is gone. */
  close(reason: Error): void {
    this.closed = reason;
    for (const c of this.calls.values()) c.reject(reason);
    this.calls.clear();
  }

  async get(hash: string): Promise<BlobReader | undefined> {
    checkHash(hash);
    if (hash === EMPTY_DIGEST.hash) return { digest: { ...EMPTY_DIGEST }, stream: Readable.from([]) };
    const info = (await this.call({ op: 'lookup', hash })) as { size: number; verified: boolean } | null;
    if (!info) return undefined;
    remember(this.present, hash);
    if (info.verified) remember(this.verified, hash);
    return this.reads.open({ hash, size: info.size }, () => this.verified.has(hash));
  }

  async put(source: Source, expected: ExpectedBlob = {}): Promise<PutResult> {
    checkExpected(expected);
    let reservation = 0;
    const tmp = path.join(this.opts.root, 'tmp', `blob.${randomBytes(8).toString('hex')}`);
    let handedOver = false;
    try {
      // Small uploads skip the round trip: the commit makes their room (or refuses) instead.
      if (expected.size !== undefined && expected.size > UNRESERVED_MAX_BYTES) {
        reservation = (await this.call({ op: 'reserve', size: expected.size, hash: expected.hash ?? '(any)' })) as number;
      }
      const { digest, fh } = await writeExpectedTemp(source, tmp, expected);
      const held = reservation;
      reservation = 0;
      handedOver = true;
      // The owner renames and fsyncs the file by its path; this handle is only closed, alongside.
      const [result] = await Promise.all([this.call({ op: 'commit', tmp, digest, reservation: held }) as Promise<PutResult>, fh.close()]);
      if (result.digest.size > 0) remember(this.present, result.digest.hash);
      return result;
    } finally {
      if (reservation > 0) this.opts.channel.send({ t: 'release', bytes: reservation });
      // Once the commit is sent the owner removes the temp file, unless it renamed it.
      if (!handedOver) await fsp.rm(tmp, { force: true });
    }
  }

  async has(digest: Digest): Promise<boolean> {
    return (await this.call({ op: 'has', digest })) as boolean;
  }

  async sizeOf(hash: string): Promise<number | undefined> {
    const size = (await this.call({ op: 'sizeOf', hash: checkHash(hash) })) as number | null;
    return size ?? undefined;
  }

  async findMissing(digests: readonly Digest[]): Promise<Digest[]> {
    return (await this.call({ op: 'findMissing', digests: digests.map((d) => ({ hash: d.hash, size: d.size })) })) as Digest[];
  }

  async delete(hash: string): Promise<boolean> {
    this.forgetLocally(checkHash(hash));
    return (await this.call({ op: 'delete', hash })) as boolean;
  }

  /** True while the owner has not announced the blob gone; the owner hears of it in a batch. */
  touch(hash: string): boolean {
    if (!this.present.has(hash)) return false;
    if (this.touches.size === 0) setTimeout(() => this.flushTouches(), TOUCH_FLUSH_MS).unref();
    this.touches.add(hash);
    return true;
  }

  private flushTouches(): void {
    const hashes = [...this.touches];
    this.touches = new Set();
    if (hashes.length > 0 && !this.closed) this.opts.channel.send({ t: 'touch', hashes });
  }

  private forgetLocally(hash: string): void {
    this.present.delete(hash);
    this.verified.delete(hash);
  }

  private call(req: StoreRequest): Promise<unknown> {
    if (this.closed) return Promise.reject(this.closed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      this.opts.channel.send({ t: 'call', id, req });
    });
  }

  private receive(raw: unknown): void {
    const parsed = toWorker.safeParse(raw);
    if (!parsed.success) return;
    const m = parsed.data;
    if (m.t === 'gone') {
      for (const h of m.hashes) this.forgetLocally(h);
      return;
    }
    const pending = this.calls.get(m.id);
    if (!pending) return;
    this.calls.delete(m.id);
    if (m.ok) pending.resolve(m.value);
    else {
      const Err = ERRORS[m.code];
      pending.reject(Err ? new Err(m.message) : new Error(m.message));
    }
  }
}

function remember(set: Set<string>, hash: string): void {
  set.delete(hash);
  set.add(hash);
  if (set.size > REMEMBERED_MAX) set.delete(set.values().next().value as string);
}
