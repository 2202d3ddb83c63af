import protobuf from 'protobufjs';
import { digestOf, isDigest, type Digest } from './digest';
import { InvalidTreeError } from './errors';
import { checkDirectoryNode, type DirectoryNode } from './merkle-tree';

/*
 * The REAPI v2 messages an agent needs to read an input tree and a master needs to write an
 * output Tree, declared with protobufjs's reflection API. They live here, below the gRPC
 * services, because agents may import cas but not remote-execution; the field numbers are
 * those of build/bazel/remote/execution/v2/remote_execution.proto (node_properties is read
 * and dropped: spillway sets no mtimes or modes beyond the executable bit).
 */
const { Type, Field } = protobuf;
const DigestType = new Type('Digest').add(new Field('hash', 1, 'string')).add(new Field('sizeBytes', 2, 'int64'));
const FileNodeType = new Type('FileNode')
  .add(new Field('name', 1, 'string'))
  .add(new Field('digest', 2, 'Digest'))
  .add(new Field('isExecutable', 4, 'bool'));
const DirectoryNodeType = new Type('DirectoryNode').add(new Field('name', 1, 'string')).add(new Field('digest', 2, 'Digest'));
const SymlinkNodeType = new Type('SymlinkNode').add(new Field('name', 1, 'string')).add(new Field('target', 2, 'string'));
const DirectoryType = new Type('Directory')
  .add(new Field('files', 1, 'FileNode', 'repeated'))
  .add(new Field('directories', 2, 'DirectoryNode', 'repeated'))
  .add(new Field('symlinks', 3, 'SymlinkNode', 'repeated'));
const TreeType = new Type('Tree').add(new Field('root', 1, 'Directory')).add(new Field('children', 2, 'Directory', 'repeated'));
new protobuf.Root()
  .define('build.bazel.remote.execution.v2')
  .add(DigestType)
  .add(FileNodeType)
  .add(DirectoryNodeType)
  .add(SymlinkNodeType)
  .add(DirectoryType)
  .add(TreeType)
  .resolveAll();

interface WireDigest {
  hash: string;
  sizeBytes: number;
}
interface WireDirectory {
  files: Array<{ name: string; digest?: WireDigest; isExecutable: boolean }>;
  directories: Array<{ name: string; digest?: WireDigest }>;
  symlinks: Array<{ name: string; target: string }>;
}

const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, defaults: true, arrays: true };

function digestFrom(d: WireDigest | undefined, where: string): Digest {
  const digest = { hash: d?.hash ?? '', size: d?.sizeBytes ?? -1 };
  if (!Number.isSafeInteger(digest.size) || !isDigest(digest)) throw new InvalidTreeError(`${where} has a malformed digest`);
  return digest;
}

/**
 * Reads a REAPI `Directory` proto as a checked {@link DirectoryNode}: the same containment rules
 * as spillway's own trees (one path component per name, no duplicates, relative symlinks that
 * stay inside), so `materializeTree` holds a hostile REAPI tree to them too.
 * @throws InvalidTreeError for bytes that are not a Directory or break a rule
 */
export function decodeReapiDirectory(data: Buffer): DirectoryNode {
  let wire: WireDirectory;
  try {
    wire = DirectoryType.toObject(DirectoryType.decode(data), TO_OBJECT) as WireDirectory;
  } catch (err) {
    throw new InvalidTreeError('directory blob is not a REAPI Directory proto', { cause: err });
  }
  return checkDirectoryNode({
    files: wire.files.map((f) => ({ name: f.name, digest: digestFrom(f.digest, `file ${JSON.stringify(f.name)}`), executable: f.isExecutable })),
    directories: wire.directories.map((d) => ({ name: d.name, digest: digestFrom(d.digest, `directory ${JSON.stringify(d.name)}`) })),
    symlinks: wire.symlinks.map((s) => ({ name: s.name, target: s.target })),
  });
}

function wireOf(node: DirectoryNode): WireDirectory & Record<string, unknown> {
  const checked = checkDirectoryNode(node);
  return {
    files: checked.files.map((f) => ({ name: f.name, digest: { hash: f.digest.hash, sizeBytes: f.digest.size }, isExecutable: f.executable })),
    directories: checked.directories.map((d) => ({ name: d.name, digest: { hash: d.digest.hash, sizeBytes: d.digest.size } })),
    symlinks: checked.symlinks.map((s) => ({ name: s.name, target: s.target })),
  };
}

/** The canonical REAPI `Directory` bytes of a node (entries sorted by name). @throws InvalidTreeError */
export function encodeReapiDirectory(node: DirectoryNode): Buffer {
  return Buffer.from(DirectoryType.encode(DirectoryType.fromObject(wireOf(node))).finish());
}

/** A file of an output directory, relative to that directory (`sub/file`). */
export interface TreeFile {
  path: string;
  digest: Digest;
  executable: boolean;
}

/**
 * Builds the REAPI `Tree` of an output directory from the files found under it: the root
 * `Directory` and every descendant once (by digest). Returns the Tree's bytes.
 * @throws InvalidTreeError for a path with an empty, `.` or `..` component, or a name used as both file and directory
 */
export function encodeReapiTree(files: readonly TreeFile[]): Buffer {
  interface Dir {
    files: DirectoryNode['files'];
    dirs: Map<string, Dir>;
  }
  const root: Dir = { files: [], dirs: new Map() };
  for (const f of files) {
    const parts = f.path.split('/');
    let dir = root;
    for (const part of parts.slice(0, -1)) {
      let next = dir.dirs.get(part);
      if (!next) dir.dirs.set(part, (next = { files: [], dirs: new Map() }));
      dir = next;
    }
    dir.files.push({ name: parts[parts.length - 1]!, digest: f.digest, executable: f.executable });
  }
  const children = new Map<string, Buffer>();
  const encode = (d: Dir): { bytes: Buffer; digest: Digest } => {
    const directories = [...d.dirs].map(([name, sub]) => {
      const child = encode(sub);
      children.set(child.digest.hash, child.bytes);
      return { name, digest: child.digest };
    });
    const bytes = encodeReapiDirectory({ files: d.files, directories, symlinks: [] });
    return { bytes, digest: digestOf(bytes) };
  };
  const top = encode(root);
  const tree = {
    root: DirectoryType.decode(top.bytes),
    children: [...children.values()].map((b) => DirectoryType.decode(b)),
  };
  return Buffer.from(TreeType.encode(TreeType.fromObject(tree)).finish());
}
