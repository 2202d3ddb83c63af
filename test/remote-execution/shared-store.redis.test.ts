import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { parseConfig } from '../../src/config';
import { reapiProtos } from '../../src/remote-execution';
import { farmConfigRaw, TestFarm } from '../helpers/farm';
import { bearer, blobName, call, digestOf, readStream, uploadName, wire, writeStream } from './reapi-fixture';

const TOKEN = 'shared-store-token-0123456789';

describe('master: the REAPI listener and the HTTP cache share one store', () => {
  let farm: TestFarm;
  before(async () => {
    farm = await new TestFarm(farmConfigRaw({ cas: { dir: mkdtempSync(join(tmpdir(), 'spillway-cas-')), prefix: '/cache', tokens: [TOKEN] } })).start();
  });
  after(() => farm.stop());

  const clients = () => {
    const { grpc: g } = reapiProtos();
    const address = farm.addr.grpcUrl!.replace('grpc://', '');
    const creds = grpc.credentials.createInsecure();
    return {
      cas: new g.build.bazel.remote.execution.v2.ContentAddressableStorage(address, creds),
      bytestream: new g.google.bytestream.ByteStream(address, creds),
      ac: new g.build.bazel.remote.execution.v2.ActionCache(address, creds),
    };
  };

  it('a blob PUT over HTTP is found and read over gRPC, and one written over gRPC is served by GET /cas/', async () => {
    const { cas, bytestream } = clients();
    const md = bearer(TOKEN);
    const auth = { authorization: `Bearer ${TOKEN}` };
    const viaHttp = Buffer.from('uploaded over HTTP');
    assert.equal((await fetch(`${farm.addr.httpUrl}/cache/cas/${digestOf(viaHttp).hash}`, { method: 'PUT', body: viaHttp, headers: auth })).status, 200);
    const missing = await call<{ missingBlobDigests: unknown[] }>(cas.FindMissingBlobs.bind(cas), { blobDigests: [wire(digestOf(viaHttp))] }, md);
    assert.equal(missing.missingBlobDigests.length, 0);
    assert.deepEqual((await readStream(bytestream, md, { resourceName: blobName(digestOf(viaHttp)) })).data, viaHttp);

    const viaGrpc = Buffer.from('uploaded over gRPC');
    await writeStream(bytestream, md, [{ resourceName: uploadName(digestOf(viaGrpc)), data: viaGrpc, finishWrite: true }]);
    const got = await fetch(`${farm.addr.httpUrl}/cache/cas/${digestOf(viaGrpc).hash}`, { headers: auth });
    assert.equal(got.status, 200);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), viaGrpc);
    for (const c of Object.values(clients())) c.close();
  });

  it('an action result stored over gRPC is the ActionResult proto GET /ac/ returns, and one PUT over HTTP is served over gRPC', async () => {
    const { ac, cas } = clients();
    const md = bearer(TOKEN);
    const auth = { authorization: `Bearer ${TOKEN}` };
    const out = Buffer.from('an output');
    await call(cas.BatchUpdateBlobs.bind(cas), { requests: [{ digest: wire(digestOf(out)), data: out }] }, md);
    const result = { exitCode: 0, outputFiles: [{ path: 'o', digest: wire(digestOf(out)) }] };
    const action = wire(digestOf('action stored over grpc'));
    await call(ac.UpdateActionResult.bind(ac), { actionDigest: action, actionResult: result }, md);
    const res = await fetch(`${farm.addr.httpUrl}/cache/ac/${action.hash}`, { headers: auth });
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), reapiProtos().actionResult.encode(result));

    const other = wire(digestOf('action stored over http'));
    const bytes = reapiProtos().actionResult.encode({ exitCode: 0, outputFiles: [{ path: 'p', digest: wire(digestOf(out)) }], executionMetadata: { worker: 'http-client' } });
    assert.equal((await fetch(`${farm.addr.httpUrl}/cache/ac/${other.hash}`, { method: 'PUT', body: bytes, headers: auth })).status, 200);
    const served = await call<{ outputFiles: Array<{ path: string }>; executionMetadata: { worker: string } }>(ac.GetActionResult.bind(ac), { actionDigest: other }, md);
    assert.equal(served.outputFiles[0]!.path, 'p');
    assert.equal(served.executionMetadata.worker, 'http-client');
    for (const c of Object.values(clients())) c.close();
  });

  it('a result GetActionResult has served is NOT_FOUND once an output it names is deleted over HTTP (the memo hears of every removal)', async () => {
    const { ac, cas } = clients();
    const md = bearer(TOKEN);
    const auth = { authorization: `Bearer ${TOKEN}` };
    const out = Buffer.from('an output deleted over HTTP later');
    await call(cas.BatchUpdateBlobs.bind(cas), { requests: [{ digest: wire(digestOf(out)), data: out }] }, md);
    const action = wire(digestOf('action whose output is deleted'));
    await call(ac.UpdateActionResult.bind(ac), { actionDigest: action, actionResult: { exitCode: 0, outputFiles: [{ path: 'o', digest: wire(digestOf(out)) }] } }, md);
    for (let i = 0; i < 2; i++) assert.equal((await call<{ outputFiles: unknown[] }>(ac.GetActionResult.bind(ac), { actionDigest: action }, md)).outputFiles.length, 1);
    assert.equal((await fetch(`${farm.addr.httpUrl}/cache/cas/${digestOf(out).hash}`, { method: 'DELETE', headers: auth })).status, 200);
    const miss = await call(ac.GetActionResult.bind(ac), { actionDigest: action }, md).then(
      () => undefined,
      (e: grpc.ServiceError) => e.code,
    );
    assert.equal(miss, grpc.status.NOT_FOUND);
    for (const c of Object.values(clients())) c.close();
  });

  it('the listener is configured by grpc.* with SPILLWAY_GRPC_PORT overriding the port, and is off without a CAS', () => {
    const base = { agents: { token: 'x'.repeat(20) }, jobTypes: { b2g: {} } };
    const c = parseConfig(base, { SPILLWAY_GRPC_PORT: '9123' });
    assert.deepEqual({ host: c.grpc.host, port: c.grpc.port, enabled: c.grpc.enabled, batch: c.grpc.maxBatchBytes }, { host: '127.0.0.1', port: 9123, enabled: true, batch: 4 * 1024 * 1024 });
    assert.equal(parseConfig(base, {}).grpc.port, 8980);
    assert.throws(() => parseConfig(base, { SPILLWAY_GRPC_PORT: 'grpc' }), /SPILLWAY_GRPC_PORT: expected a port number/);
    assert.throws(() => parseConfig({ ...base, grpc: { tls: { cert: 'c.pem' } } }, {}), /grpc\.tls\.key/);
  });
});

describe('master: no REAPI listener without a CAS', () => {
  it('has no grpcUrl when cas.dir is unset', async () => {
    const farm = await new TestFarm(farmConfigRaw()).start();
    try {
      assert.equal(farm.addr.grpcUrl, undefined);
    } finally {
      await farm.stop();
    }
  });
});
