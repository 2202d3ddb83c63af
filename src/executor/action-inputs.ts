import { randomBytes } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { SpillwayError } from '../lib';
import { EMPTY_DIGEST, decodeDirectory, type CasClient, type Digest, type DirectoryDecoder, type DiskStore, type TreeFetcher } from '../cas';

/** A blob the input tree names is neither in the local cache nor on the master. */
export class MissingInputError extends SpillwayError {
  readonly code = 'SPILLWAY_E_ACTION_MISSING_INPUT';
  readonly disposition = 'fatal';
}

/** Counters of one materialization, for logs and tests. */
export interface InputFetchStats {
  /** Blobs (directories and files) served by the local cache. */
  localHits: number;
  /** Blobs downloaded from the master. */
  downloaded: number;
  downloadedBytes: number;
  /** Files hardlinked from the local cache. */
  linked: number;
  /** Files copied (mode differs from the cached file's, cross-device, link refused, empty). */
  copied: number;
}

/**
 * A {@link TreeFetcher} reading through the agent's local cache: directory nodes and files are
 * taken from `local` when present, otherwise downloaded from the master (verified) and stored in
 * `local` for the next build.
 *
 * Files are hardlinked from the cache when the cached file already has the mode the tree wants;
 * otherwise they are copied. The fetcher never chmods a hardlinked file, because that would
 * change the mode of the cache's own inode. A build that rewrites a hardlinked input in place
 * does change the cached bytes: the store verifies every read, so such a blob is detected as
 * corrupt, dropped and fetched again, never served wrong.
 *
 * `tmpDir` receives partial downloads; it should be on the same filesystem as the store.
 * `decode` must be the decoder `materializeTree` is given (it reads the nodes for their sizes).
 */
export function cachingTreeFetcher(
  root: Digest,
  local: DiskStore,
  remote: CasClient,
  tmpDir: string,
  stats: InputFetchStats,
  decode: DirectoryDecoder = decodeDirectory,
): TreeFetcher {
  // The TreeFetcher API names directories by hash only, but a download is verified against
  // hash and size: sizes are learnt from the parent nodes (materializeTree loads parents first).
  const sizes = new Map<string, number>([[root.hash, root.size]]);
  const learn = (buf: Buffer): void => {
    for (const d of decode(buf).directories) sizes.set(d.digest.hash, d.digest.size);
  };
  // Several files of a tree may share one blob: download it once.
  const fetching = new Map<string, Promise<void>>();

  const ensureLocal = (digest: Digest): Promise<void> => {
    let p = fetching.get(digest.hash);
    if (!p) {
      p = (async () => {
        if (await local.has(digest)) {
          stats.localHits++;
          return;
        }
        const tmp = path.join(tmpDir, `input-${digest.hash.slice(0, 16)}-${randomBytes(6).toString('hex')}`);
        try {
          if (!(await remote.downloadToFile(digest, tmp))) {
            throw new MissingInputError(`input blob ${digest.hash}/${digest.size} is not in the local cache nor on the master`);
          }
          stats.downloaded++;
          stats.downloadedBytes += digest.size;
          // put() hashes the bytes again: what enters the cache is verified by the cache itself.
          await local.put(createReadStream(tmp), { hash: digest.hash, size: digest.size });
        } finally {
          await fsp.rm(tmp, { force: true });
        }
      })();
      fetching.set(digest.hash, p);
      p.catch(() => fetching.delete(digest.hash));
    }
    return p;
  };

  return {
    async directory(hash) {
      // An empty directory node is the empty blob, which no store holds as a file.
      if (hash === EMPTY_DIGEST.hash && sizes.get(hash) === 0) return Buffer.alloc(0);
      const cached = await local.getBuffer(hash);
      if (cached) {
        stats.localHits++;
        learn(cached);
        return cached;
      }
      const size = sizes.get(hash);
      if (size === undefined) throw new MissingInputError(`directory ${hash} is not referenced by a loaded node`);
      const buf = await remote.getBlob({ hash, size });
      if (!buf) throw new MissingInputError(`input directory ${hash}/${size} is not in the local cache nor on the master`);
      stats.downloaded++;
      stats.downloadedBytes += size;
      await local.putBuffer(buf, { hash, size });
      learn(buf);
      return buf;
    },

    async file(digest, dest, executable) {
      const mode = executable ? 0o755 : 0o644;
      if (digest.size === 0 && digest.hash === EMPTY_DIGEST.hash) {
        // The store never holds the empty blob as a file.
        await fsp.writeFile(dest, Buffer.alloc(0), { flag: 'wx', mode });
        await fsp.chmod(dest, mode);
        stats.copied++;
        return;
      }
      for (let attempt = 0; ; attempt++) {
        await ensureLocal(digest);
        const blob = local.blobPath(digest.hash);
        try {
          const st = await fsp.stat(blob);
          if ((st.mode & 0o7777) === mode) {
            try {
              await fsp.link(blob, dest);
              stats.linked++;
              return;
            } catch (err) {
              const code = (err as NodeJS.ErrnoException).code;
              if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw err;
            }
          }
          await copyWithMode(blob, dest, mode);
          stats.copied++;
          return;
        } catch (err) {
          // Evicted between ensureLocal and the link: fetch it again, once.
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt > 0) throw err;
          fetching.delete(digest.hash);
        }
      }
    },
  };
}

async function copyWithMode(src: string, dest: string, mode: number): Promise<void> {
  const tmp = `${dest}.part-${randomBytes(6).toString('hex')}`;
  try {
    await fsp.copyFile(src, tmp);
    await fsp.chmod(tmp, mode);
    await fsp.rename(tmp, dest);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}
