import { digestOf, type Digest } from '../cas';
import { reapiProtos } from './reapi-protos';
import type { Directory } from './reapi-types';

/** What one output directory holds, paths relative to it. */
export interface TreeEntries {
  files: ReadonlyArray<{ path: string; digest: Digest; executable: boolean }>;
  /** Kept as links: SymlinkNodes, never the files they lead to. */
  symlinks: ReadonlyArray<{ path: string; target: string }>;
  /** Directories below the root; an empty one becomes a DirectoryNode naming an empty Directory. */
  directories: readonly string[];
}

interface Dir {
  files: Array<{ name: string; digest: Digest; executable: boolean }>;
  symlinks: Array<{ name: string; target: string }>;
  dirs: Map<string, Dir>;
}

const wire = (d: Digest) => ({ hash: d.hash, sizeBytes: d.size });
const byName = (a: { name: string }, b: { name: string }) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name));

/**
 * A REAPI Tree of an output directory: the root and every distinct descendant Directory, each
 * canonically encoded with its lists sorted by name, so the same contents always give the same
 * Tree digest. An empty output directory is a Tree whose root is an empty Directory.
 */
export function encodeTree(entries: TreeEntries): Buffer {
  const root: Dir = { files: [], symlinks: [], dirs: new Map() };
  const dirAt = (parts: readonly string[]): Dir => {
    let dir = root;
    for (const part of parts) {
      let next = dir.dirs.get(part);
      if (!next) dir.dirs.set(part, (next = { files: [], symlinks: [], dirs: new Map() }));
      dir = next;
    }
    return dir;
  };
  for (const d of entries.directories) dirAt(d.split('/'));
  for (const f of entries.files) {
    const parts = f.path.split('/');
    dirAt(parts.slice(0, -1)).files.push({ name: parts[parts.length - 1]!, digest: f.digest, executable: f.executable });
  }
  for (const s of entries.symlinks) {
    const parts = s.path.split('/');
    dirAt(parts.slice(0, -1)).symlinks.push({ name: parts[parts.length - 1]!, target: s.target });
  }
  const codec = reapiProtos().directory;
  const children = new Map<string, Directory>();
  const build = (d: Dir): Directory => ({
    files: [...d.files].sort(byName).map((f) => ({ name: f.name, digest: wire(f.digest), isExecutable: f.executable })),
    directories: [...d.dirs]
      .map(([name, sub]) => {
        const node = build(sub);
        const digest = digestOf(codec.encode(node));
        children.set(digest.hash, node);
        return { name, digest: wire(digest) };
      })
      .sort(byName),
    symlinks: [...d.symlinks].sort(byName),
  });
  const top = build(root);
  return reapiProtos().tree.encode({ root: top, children: [...children.values()] });
}
