import type protobuf from 'protobufjs';
import { isDigest, type Digest } from './digest';
import { InvalidTreeError } from './errors';
import { checkDirectoryNode, type DirectoryNode } from './merkle-tree';

/*
 * The REAPI v2 messages an agent needs to read an input tree, declared with protobufjs's
 * reflection API. They live here, below the gRPC services (whose loader reads the whole
 * .proto files), because agents may import cas but not remote-execution; the field numbers are
 * those of build/bazel/remote/execution/v2/remote_execution.proto (node_properties is read
 * and dropped: spillway sets no mtimes or modes beyond the executable bit).
 */
let directoryType: protobuf.Type | undefined;

/**
 * Built on first use: protobufjs costs ~15 MB resident, and a master reads no REAPI tree unless
 * remote actions run (an agent only when it builds one).
 */
function reapiDirectoryType(): protobuf.Type {
  if (directoryType) return directoryType;
  const { Type, Field, Root } = require('protobufjs') as typeof protobuf;
  const DirectoryType = new Type('Directory')
    .add(new Field('files', 1, 'FileNode', 'repeated'))
    .add(new Field('directories', 2, 'DirectoryNode', 'repeated'))
    .add(new Field('symlinks', 3, 'SymlinkNode', 'repeated'));
  new Root()
    .define('build.bazel.remote.execution.v2')
    .add(new Type('Digest').add(new Field('hash', 1, 'string')).add(new Field('sizeBytes', 2, 'int64')))
    .add(new Type('FileNode').add(new Field('name', 1, 'string')).add(new Field('digest', 2, 'Digest')).add(new Field('isExecutable', 4, 'bool')))
    .add(new Type('DirectoryNode').add(new Field('name', 1, 'string')).add(new Field('digest', 2, 'Digest')))
    .add(new Type('SymlinkNode').add(new Field('name', 1, 'string')).add(new Field('target', 2, 'string')))
    .add(DirectoryType)
    .resolveAll();
  return (directoryType = DirectoryType);
}

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
  const DirectoryType = reapiDirectoryType();
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
