import { promises as fsp, type Stats } from 'node:fs';
import * as path from 'node:path';
import { digestOf, digestOfFile, isDigest, type Digest } from './digest';
import { InvalidTreeError } from './errors';

/** A file in a {@link DirectoryNode}. `executable` is true when any x bit was set. */
export interface FileEntry {
  name: string;
  digest: Digest;
  executable: boolean;
}

/** A subdirectory in a {@link DirectoryNode}; `digest` is that of its encoded node. */
export interface DirectoryEntry {
  name: string;
  digest: Digest;
}

/** A symlink in a {@link DirectoryNode}, kept as a link: `target` is its relative target text. */
export interface SymlinkEntry {
  name: string;
  target: string;
}

/**
 * One directory of a Merkle input tree. Its digest is the SHA-256 of {@link encodeDirectory}.
 *
 * Canonical encoding (what another implementation must produce byte for byte):
 * - UTF-8 JSON with no whitespace and this exact key order:
 *   `{"files":[{"name":N,"digest":{"hash":H,"size":S},"executable":B},...],`
 *   `"directories":[{"name":N,"digest":{"hash":H,"size":S}},...],"symlinks":[{"name":N,"target":T},...]}`
 *   (one line; all three keys always present, lists possibly empty `[]`).
 * - Each list is sorted by the UTF-8 bytes of `name`, compared as unsigned bytes (memcmp order,
 *   not UTF-16 order). A name appears at most once across all three lists.
 * - Strings are escaped as ECMAScript `JSON.stringify` does: `"` → `\"`, `\` → `\\`, U+0008 `\b`,
 *   U+0009 `\t`, U+000A `\n`, U+000C `\f`, U+000D `\r`, other code points below U+0020 as `\u00xx`
 *   (lower-case hex); everything else, `/` and non-ASCII included, literally. Strings must be
 *   valid Unicode (no lone surrogates).
 * - `H` is 64 lower-case hex digits; `S` a decimal integer without sign, exponent or leading
 *   zeros; `B` is `true` or `false`.
 * - Names are non-empty, not `.` or `..`, and contain neither `/` nor NUL. Symlink targets are
 *   non-empty, relative, NUL-free, and of the form `../`* followed by plain names (`.` and empty
 *   components are allowed anywhere; `..` after a name is not, see {@link checkSymlinkTarget}).
 */
export interface DirectoryNode {
  files: FileEntry[];
  directories: DirectoryEntry[];
  symlinks: SymlinkEntry[];
}

/** Options of {@link buildTree}. */
export interface BuildTreeOptions {
  /**
   * Record what symlinks point to (as files and directories) instead of the links themselves.
   * Links may then point anywhere; dangling links and directory cycles are errors.
   * @defaultValue false
   */
  followSymlinks?: boolean;
}

/** Result of {@link buildTree}: the root digest and every blob needed to recreate the tree. */
export interface BuiltTree {
  root: Digest;
  /** Encoded directory nodes by hash, root included. */
  directories: Map<string, Buffer>;
  /** Absolute path of one file with that content, by hash. */
  files: Map<string, string>;
}

/** How {@link materializeTree} obtains blobs. */
export interface TreeFetcher {
  /** The encoded directory node with this hash (it is verified against its digest). */
  directory(hash: string): Promise<Buffer>;
  /**
   * Creates the regular file `destPath` (which does not exist yet) with the content of `digest`.
   * It may hardlink from a cache; the mode is corrected afterwards only if it is wrong.
   */
  file(digest: Digest, destPath: string, executable: boolean): Promise<void>;
}

/**
 * Bounds on a tree {@link materializeTree} is willing to create. A directory node may be
 * referenced many times (the tree is a DAG), so a few small blobs can describe a huge tree:
 * entries and bytes are counted as placed, repeats included.
 */
export interface MaterializeLimits {
  /** Directories below the root. @defaultValue 256 */
  maxDepth?: number;
  /** Files, directories and symlinks created in all. @defaultValue 1,000,000 */
  maxEntries?: number;
  /** Sum of the sizes of the files created. @defaultValue Number.MAX_SAFE_INTEGER */
  maxBytes?: number;
}

export const DEFAULT_MATERIALIZE_LIMITS: Readonly<Required<MaterializeLimits>> = Object.freeze({
  maxDepth: 256,
  maxEntries: 1_000_000,
  maxBytes: Number.MAX_SAFE_INTEGER,
});

const byName = (a: { name: string }, b: { name: string }): number =>
  Buffer.compare(Buffer.from(a.name, 'utf8'), Buffer.from(b.name, 'utf8'));

/**
 * The canonical bytes of a directory node (see {@link DirectoryNode}). Entries are sorted here,
 * so callers may pass them in any order.
 * @throws InvalidTreeError for bad names, duplicate names, malformed digests or symlink targets
 */
export function encodeDirectory(node: DirectoryNode): Buffer {
  const { files, directories, symlinks } = checkDirectoryNode(node);
  const str = JSON.stringify;
  const dig = (d: Digest): string => `{"hash":${str(d.hash)},"size":${d.size}}`;
  const text =
    `{"files":[${files.map((f) => `{"name":${str(f.name)},"digest":${dig(f.digest)},"executable":${f.executable}}`).join(',')}],` +
    `"directories":[${directories.map((d) => `{"name":${str(d.name)},"digest":${dig(d.digest)}}`).join(',')}],` +
    `"symlinks":[${symlinks.map((s) => `{"name":${str(s.name)},"target":${str(s.target)}}`).join(',')}]}`;
  return Buffer.from(text, 'utf8');
}

/**
 * Checks what every directory node must satisfy, whatever its encoding (ours, or a REAPI
 * `Directory` proto): names are single path components, no name twice, digests well-formed,
 * symlink targets relative and not climbing out. Returns the lists sorted by name.
 * @throws InvalidTreeError
 */
export function checkDirectoryNode(node: DirectoryNode): DirectoryNode {
  const files = [...node.files].sort(byName);
  const directories = [...node.directories].sort(byName);
  const symlinks = [...node.symlinks].sort(byName);
  const seen = new Set<string>();
  for (const e of [...files, ...directories, ...symlinks]) {
    checkName(e.name);
    if (seen.has(e.name)) throw new InvalidTreeError(`directory lists ${JSON.stringify(e.name)} twice`);
    seen.add(e.name);
  }
  for (const e of [...files, ...directories]) {
    if (!isDigest(e.digest)) throw new InvalidTreeError(`entry ${JSON.stringify(e.name)} has a malformed digest`);
  }
  for (const f of files) {
    if (typeof f.executable !== 'boolean') throw new InvalidTreeError(`file ${JSON.stringify(f.name)}: executable must be a boolean`);
  }
  for (const s of symlinks) checkSymlinkTarget(s.target, Infinity, s.name);
  return { files, directories, symlinks };
}

/** Turns the bytes of a directory blob into a checked node; one per tree encoding. @throws InvalidTreeError */
export type DirectoryDecoder = (data: Buffer) => DirectoryNode;

/** The digest of a directory node: SHA-256 of its canonical encoding. */
export function digestOfDirectory(node: DirectoryNode): Digest {
  return digestOf(encodeDirectory(node));
}

/**
 * Parses an encoded directory node, accepting only the canonical form (so one tree never has two
 * digests and a hostile blob cannot smuggle in extra fields or unsorted duplicates).
 * @throws InvalidTreeError when the bytes are not a canonical directory node
 */
export function decodeDirectory(data: Buffer): DirectoryNode {
  let raw: unknown;
  try {
    raw = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new InvalidTreeError('directory blob is not JSON', { cause: err });
  }
  const o = raw as Partial<Record<keyof DirectoryNode, unknown>> | null;
  if (!o || typeof o !== 'object' || !Array.isArray(o.files) || !Array.isArray(o.directories) || !Array.isArray(o.symlinks)) {
    throw new InvalidTreeError('directory blob lacks files/directories/symlinks lists');
  }
  const node: DirectoryNode = {
    files: o.files.map((f: { name?: unknown; digest?: unknown; executable?: unknown }) => ({
      name: f?.name as string,
      digest: f?.digest as Digest,
      executable: f?.executable as boolean,
    })),
    directories: o.directories.map((d: { name?: unknown; digest?: unknown }) => ({ name: d?.name as string, digest: d?.digest as Digest })),
    symlinks: o.symlinks.map((s: { name?: unknown; target?: unknown }) => ({ name: s?.name as string, target: s?.target as string })),
  };
  if (!encodeDirectory(node).equals(data)) throw new InvalidTreeError('directory blob is not in canonical encoding');
  return node;
}

/**
 * Walks `rootDir` and returns its Merkle tree. Files are hashed streamed; nothing is skipped
 * (dotfiles, empty directories and empty files are part of the tree).
 * @throws InvalidTreeError for special files (fifos, sockets, devices), names that are not valid
 *   UTF-8, and (unless following) symlinks that are absolute or lead out of `rootDir`
 */
export async function buildTree(rootDir: string, options: BuildTreeOptions = {}): Promise<BuiltTree> {
  const root = path.resolve(rootDir);
  const st = await fsp.stat(root);
  if (!st.isDirectory()) throw new InvalidTreeError(`tree root ${root} is not a directory`);
  const blobs = { directories: new Map<string, Buffer>(), files: new Map<string, string>() };
  const digest = await walk(root, '', 0, blobs, options.followSymlinks ?? false, new Set());
  return { root: digest, ...blobs };
}

async function walk(
  dir: string,
  rel: string,
  depth: number,
  out: Omit<BuiltTree, 'root'>,
  follow: boolean,
  ancestors: Set<string>,
): Promise<Digest> {
  // Only a followed symlink can make a walk revisit a directory; real directories form a tree.
  const real = follow ? await fsp.realpath(dir) : dir;
  if (ancestors.has(real)) throw new InvalidTreeError(`symlink cycle: ${rel || '.'} leads back to ${real}`);
  ancestors.add(real);
  const node: DirectoryNode = { files: [], directories: [], symlinks: [] };
  for (const raw of await fsp.readdir(dir, { encoding: 'buffer' })) {
    const name = raw.toString('utf8');
    const relPath = rel ? `${rel}/${name}` : name;
    if (!Buffer.from(name, 'utf8').equals(raw)) {
      throw new InvalidTreeError(`${rel || '.'}: a name is not valid UTF-8 (${raw.toString('hex')} hex)`);
    }
    const abs = path.join(dir, name);
    let st: Stats = await fsp.lstat(abs);
    if (st.isSymbolicLink()) {
      if (!follow) {
        const target = await fsp.readlink(abs, { encoding: 'buffer' });
        const text = target.toString('utf8');
        if (!Buffer.from(text, 'utf8').equals(target)) throw new InvalidTreeError(`symlink ${relPath}: target is not valid UTF-8`);
        checkSymlinkTarget(text, depth, relPath);
        node.symlinks.push({ name, target: text });
        continue;
      }
      try {
        st = await fsp.stat(abs);
      } catch (err) {
        throw new InvalidTreeError(`symlink ${relPath} cannot be followed: ${(err as Error).message}`, { cause: err });
      }
    }
    if (st.isDirectory()) {
      node.directories.push({ name, digest: await walk(abs, relPath, depth + 1, out, follow, ancestors) });
    } else if (st.isFile()) {
      const digest = await digestOfFile(abs);
      if (!out.files.has(digest.hash)) out.files.set(digest.hash, abs);
      node.files.push({ name, digest, executable: (st.mode & 0o111) !== 0 });
    } else {
      throw new InvalidTreeError(`${relPath} is neither a file, a directory nor a symlink (mode ${st.mode.toString(8)})`);
    }
  }
  ancestors.delete(real);
  const encoded = encodeDirectory(node);
  const digest = digestOf(encoded);
  out.directories.set(digest.hash, encoded);
  return digest;
}

/**
 * Recreates the tree `root` under `dest`, which must not exist or be an empty directory.
 * Directories are created 0755, files get mode 0755 or 0644, symlinks are created as links.
 * Every directory blob is verified against its digest and every name and symlink target is
 * checked before anything is created for it, so a hostile tree cannot write outside `dest`.
 * `decode` reads the directory blobs: ours by default, REAPI `Directory` protos with
 * {@link decodeReapiDirectory}; both go through {@link checkDirectoryNode}.
 * @throws InvalidTreeError for a hostile or malformed tree, a tree over `limits`, or a non-empty `dest`
 */
export async function materializeTree(
  root: Digest,
  dest: string,
  fetch: TreeFetcher,
  limits: MaterializeLimits = {},
  decode: DirectoryDecoder = decodeDirectory,
): Promise<void> {
  const base = path.resolve(dest);
  await fsp.mkdir(base, { recursive: true, mode: 0o755 });
  if ((await fsp.readdir(base)).length > 0) throw new InvalidTreeError(`cannot materialize into non-empty ${base}`);
  const nodes = new Map<string, Promise<DirectoryNode>>();
  const load = (d: Digest): Promise<DirectoryNode> => {
    let p = nodes.get(d.hash);
    if (!p) {
      p = fetch.directory(d.hash).then((buf) => {
        const got = digestOf(buf);
        if (got.hash !== d.hash || got.size !== d.size) {
          throw new InvalidTreeError(`directory blob ${d.hash} does not match its digest (got ${got.hash}/${got.size})`);
        }
        return decode(buf);
      });
      nodes.set(d.hash, p);
    }
    return p;
  };
  const budget = { ...DEFAULT_MATERIALIZE_LIMITS, ...limits, entries: 0, bytes: 0 };
  await place(root, base, '', 0, load, fetch, budget);
}

type Budget = Required<MaterializeLimits> & { entries: number; bytes: number };

async function place(
  digest: Digest,
  dir: string,
  rel: string,
  depth: number,
  load: (d: Digest) => Promise<DirectoryNode>,
  fetch: TreeFetcher,
  budget: Budget,
): Promise<void> {
  // decodeDirectory has validated names and target shapes; the depth check needs the position.
  const node = await load(digest);
  for (const s of node.symlinks) checkSymlinkTarget(s.target, depth, rel ? `${rel}/${s.name}` : s.name);
  // Checked before anything of this node is fetched or created, so an oversized tree costs little.
  budget.entries += node.files.length + node.directories.length + node.symlinks.length;
  if (budget.entries > budget.maxEntries) throw new InvalidTreeError(`input tree has more than ${budget.maxEntries} entries (limit reached at ${rel || '.'})`);
  for (const f of node.files) budget.bytes += f.digest.size;
  if (budget.bytes > budget.maxBytes) throw new InvalidTreeError(`input tree's files exceed ${budget.maxBytes} bytes (limit reached at ${rel || '.'})`);
  if (node.directories.length > 0 && depth + 1 > budget.maxDepth) {
    throw new InvalidTreeError(`input tree is deeper than ${budget.maxDepth} directories (at ${rel || '.'})`);
  }
  for (const f of node.files) {
    const p = path.join(dir, f.name);
    await fetch.file(f.digest, p, f.executable);
    const st = await fsp.lstat(p);
    if (!st.isFile()) throw new InvalidTreeError(`fetching ${f.digest.hash} did not create a regular file at ${p}`);
    const mode = f.executable ? 0o755 : 0o644;
    if ((st.mode & 0o7777) !== mode) await fsp.chmod(p, mode);
  }
  for (const s of node.symlinks) await fsp.symlink(s.target, path.join(dir, s.name));
  for (const d of node.directories) {
    const p = path.join(dir, d.name);
    await fsp.mkdir(p, { mode: 0o755 });
    await fsp.chmod(p, 0o755);
    await place(d.digest, p, rel ? `${rel}/${d.name}` : d.name, depth + 1, load, fetch, budget);
  }
}

function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new InvalidTreeError(`invalid entry name ${JSON.stringify(name)} (must be one non-empty path component)`);
  }
  if (!isWellFormed(name)) throw new InvalidTreeError(`invalid entry name ${JSON.stringify(name)} (not valid Unicode)`);
}

/**
 * Rejects a symlink target that is absolute or could resolve outside the root (@throws
 * InvalidTreeError). `depth` is how
 * many directories the link sits below the root. `..` is allowed only as a leading run: after a
 * name it cannot be judged lexically, because that name may itself be a symlink (`s/..` with
 * `s -> ..` climbs two levels), so `a/../b` is refused even though it usually is harmless.
 */
export function checkSymlinkTarget(target: unknown, depth: number, where: string): asserts target is string {
  const bad = (why: string): never => {
    throw new InvalidTreeError(`symlink ${where} -> ${JSON.stringify(target)}: ${why}`);
  };
  if (typeof target !== 'string' || target === '') return bad('empty target');
  if (target.includes('\0')) return bad('target contains NUL');
  if (!isWellFormed(target)) return bad('target is not valid Unicode');
  if (target.startsWith('/')) return bad('absolute targets are not allowed');
  let ups = 0;
  let named = false;
  for (const c of target.split('/')) {
    if (c === '' || c === '.') continue;
    if (c !== '..') named = true;
    else if (named) return bad("'..' after a name is not allowed (the name may be a symlink)");
    else ups++;
  }
  if (ups > depth) bad(`escapes the tree root (climbs ${ups} levels from depth ${depth})`);
}

/** No lone surrogates: the string survives a UTF-8 round trip. */
function isWellFormed(s: string): boolean {
  return Buffer.from(s, 'utf8').toString('utf8') === s;
}
