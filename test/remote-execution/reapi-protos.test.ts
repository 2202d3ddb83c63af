import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Code, PROTO_DIR, reapiProtos, RpcError } from '../../src/remote-execution';

describe('REAPI protos', () => {
  it('are found relative to the package root from dist', () => {
    assert.ok(existsSync(join(PROTO_DIR, 'build/bazel/remote/execution/v2/remote_execution.proto')), PROTO_DIR);
  });

  it('define every REAPI service with its wire paths', () => {
    const { grpc } = reapiProtos();
    const v2 = grpc.build.bazel.remote.execution.v2;
    assert.equal(v2.ContentAddressableStorage.service.FindMissingBlobs.path, '/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs');
    assert.equal(v2.Execution.service.Execute.responseStream, true);
    assert.equal(v2.Execution.service.WaitExecution.path, '/build.bazel.remote.execution.v2.Execution/WaitExecution');
    assert.equal(v2.ActionCache.service.UpdateActionResult.path, '/build.bazel.remote.execution.v2.ActionCache/UpdateActionResult');
    assert.equal(v2.Capabilities.service.GetCapabilities.path, '/build.bazel.remote.execution.v2.Capabilities/GetCapabilities');
    assert.equal(grpc.google.bytestream.ByteStream.service.Write.requestStream, true);
    assert.equal(grpc.google.longrunning.Operations.service.GetOperation.path, '/google.longrunning.Operations/GetOperation');
  });

  it('encode canonically: default scalars are omitted even when a decoded message carries them', () => {
    const { action } = reapiProtos();
    const digestBytes = (hex: string): Buffer => Buffer.from(hex, 'hex');
    // Action{command_digest{hash:"ab", size_bytes:3}}: field 1 (len 6) { field 1 "ab", field 2 varint 3 }
    const wire = digestBytes('0a060a026162100' + '3');
    const decoded = action.decode(wire);
    assert.equal(decoded.commandDigest?.hash, 'ab');
    assert.equal(decoded.commandDigest?.sizeBytes, 3);
    assert.equal(decoded.doNotCache, false);
    assert.deepEqual(action.encode(decoded), wire);
    // An empty sub-message keeps its presence (tag + zero length), like every protobuf runtime.
    assert.deepEqual(action.encode({ commandDigest: { hash: '', sizeBytes: 0 }, doNotCache: false }), digestBytes('0a00'));
  });

  it('round-trip Directory, Command, Tree and ActionResult', () => {
    const p = reapiProtos();
    const dir = { files: [{ name: 'a.txt', digest: { hash: 'f'.repeat(64), sizeBytes: 12 }, isExecutable: true }], directories: [], symlinks: [{ name: 'l', target: 'a.txt' }] };
    const d = p.directory.decode(p.directory.encode(dir));
    assert.equal(d.files[0]?.name, 'a.txt');
    assert.equal(d.files[0]?.isExecutable, true);
    assert.equal(d.symlinks[0]?.target, 'a.txt');
    const cmd = p.command.decode(p.command.encode({ arguments: ['sh', '-c', 'true'], environmentVariables: [{ name: 'A', value: '1' }], outputPaths: ['out'] }));
    assert.deepEqual(cmd.arguments, ['sh', '-c', 'true']);
    assert.equal(cmd.outputDirectoryFormat, 'TREE_ONLY');
    const tree = p.tree.decode(p.tree.encode({ root: dir, children: [dir] }));
    assert.equal(tree.children.length, 1);
    const ar = p.actionResult.decode(p.actionResult.encode({ exitCode: 2, stderrRaw: Buffer.from('boom'), executionMetadata: { worker: 'w1' } }));
    assert.equal(ar.exitCode, 2);
    assert.equal(Buffer.from(ar.stderrRaw).toString(), 'boom');
    assert.equal(ar.executionMetadata?.worker, 'w1');
    assert.throws(() => p.directory.decode(Buffer.from('ffffffff', 'hex')));
  });
});

describe('RpcError status details', () => {
  it('carry typed details (PreconditionFailure) as grpc-status-details-bin, with Any type_url intact', () => {
    const p = reapiProtos();
    const violation = p.preconditionFailure.encode({ violations: [{ type: 'MISSING', subject: `blobs/${'a'.repeat(64)}/3` }] });
    const err = new RpcError(Code.FAILED_PRECONDITION, 'missing inputs', [{ typeUrl: p.preconditionFailure.typeUrl, value: violation }]);
    const [bin] = err.metadata.get('grpc-status-details-bin');
    assert.ok(Buffer.isBuffer(bin));
    const st = p.status.decode(bin);
    assert.equal(st.code, Code.FAILED_PRECONDITION);
    assert.equal(st.details[0]?.type_url, 'type.googleapis.com/google.rpc.PreconditionFailure');
    const back = p.preconditionFailure.decode(st.details[0]!.value as Buffer);
    assert.equal(back.violations[0]?.subject, `blobs/${'a'.repeat(64)}/3`);
  });
});
