import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { status as Code } from '@grpc/grpc-js';
import { digestOf, type Digest } from '../../src/cas';
import type { BuildRecord } from '../../src/master';
import { reapiProtos, type ServerCapabilities__Output } from '../../src/remote-execution';
import { freePort } from '../../src/lib';
import { farmConfigRaw, TestFarm } from '../helpers/farm';
import { waitUntil } from '../helpers/wait-until';
import { ReapiClient, wire } from './reapi-client';

const CAS_TOKEN = 'reapi-exec-token-0123456789';
const READ_TOKEN = 'reapi-read-token-0123456789';
const SH = '/bin/sh';
const PATH = { name: 'PATH', value: '/usr/local/bin:/usr/bin:/bin' };

describe('remote-execution/Execution (a master with real agents)', function () {
  this.timeout(60_000);
  let dir: string;
  let farm: TestFarm;
  let client: ReapiClient;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'spillway-exec-'));
    farm = await new TestFarm(
      farmConfigRaw({
        cas: { dir: path.join(dir, 'cas'), prefix: '/cache', tokens: [CAS_TOKEN], readTokens: [READ_TOKEN] },
        jobTypes: { remote: { attempts: 1, timeoutSec: 60 }, b2g: {} },
        remoteExecution: { defaultJobType: 'remote' },
      }),
    ).start();
    const casUrl = `${farm.addr.httpUrl}/cache`;
    await farm.agent({ name: 'exec-1', jobTypes: ['remote'], executors: 2, casUrl, casToken: CAS_TOKEN, workDir: path.join(dir, 'work-1'), cacheDir: path.join(dir, 'agent-cache-1') });
    client = new ReapiClient(farm.addr.grpcUrl!, casUrl, CAS_TOKEN);
  });
  after(async () => {
    client?.close();
    await farm?.stop();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  /** An action running `script` with /bin/sh on an input root holding `in.txt`. */
  async function shAction(script: string, o: { outputs?: string[]; dirs?: string[]; paths?: string[]; timeoutSec?: number; salt?: string } = {}): Promise<Digest> {
    const input = await client.put(`input ${o.salt ?? ''}\n`);
    const root = await client.directory({ files: [{ name: 'in.txt', digest: wire(input) }] });
    return client.action(
      { arguments: [SH, '-c', script], environmentVariables: [PATH], outputFiles: o.outputs ?? [], outputDirectories: o.dirs ?? [], outputPaths: o.paths ?? [] },
      root,
      { ...(o.timeoutSec && { timeout: { seconds: o.timeoutSec } }), ...(o.salt && { salt: Buffer.from(o.salt) }) },
    );
  }

  function preconditionViolations(r: { status: { details: Array<{ value: Buffer }> } | null }): string[] {
    const [detail] = r.status!.details;
    assert.equal((detail as unknown as { type_url: string }).type_url, 'type.googleapis.com/google.rpc.PreconditionFailure');
    return reapiProtos().preconditionFailure.decode(detail!.value).violations.map((v) => `${v.type} ${v.subject}`);
  }

  it('is announced by Capabilities (exec_enabled) once registered', async () => {
    const v2 = reapiProtos().grpc.build.bazel.remote.execution.v2;
    const caps = new v2.Capabilities(farm.addr.grpcUrl!.replace('grpc://', ''), grpc.credentials.createInsecure());
    try {
      const got = await new Promise<ServerCapabilities__Output>((resolve, reject) =>
        caps.getCapabilities({ instanceName: '' }, client.metadata(), (err, res) => (err ? reject(err) : resolve(res!))),
      );
      assert.equal(got.executionCapabilities!.execEnabled, true);
      assert.equal(got.executionCapabilities!.digestFunction, 'SHA256');
    } finally {
      caps.close();
    }
  });

  it('refuses a call without a token, with a wrong one, and with a read-only one', async () => {
    const a = await shAction('true', { salt: 'auth' });
    assert.equal((await client.execute(a, { token: null })).status.code, Code.UNAUTHENTICATED);
    assert.equal((await client.execute(a, { token: 'wrong-token-0123456789' })).status.code, Code.UNAUTHENTICATED);
    assert.equal((await client.execute(a, { token: READ_TOKEN })).status.code, Code.PERMISSION_DENIED);
    assert.equal((await client.wait('ra-00000000-0000-0000-0000-000000000000', READ_TOKEN)).status.code, Code.PERMISSION_DENIED);
  });

  it('refuses a malformed action digest with INVALID_ARGUMENT, an unknown operation with NOT_FOUND', async () => {
    const bad = await client.execute({ hash: 'xyz', sizeBytes: 3 });
    assert.equal(bad.status.code, Code.INVALID_ARGUMENT);
    assert.match(bad.status.details, /action_digest/);
    assert.equal((await client.execute({ hash: 'a'.repeat(64), sizeBytes: -1 })).status.code, Code.INVALID_ARGUMENT);
    assert.equal((await client.wait('ra-00000000-0000-0000-0000-000000000000')).status.code, Code.NOT_FOUND);
    assert.equal((await client.wait('../../etc/passwd')).status.code, Code.NOT_FOUND);
  });

  it('answers FAILED_PRECONDITION naming the missing Action, Command and input blobs (nothing submitted)', async () => {
    const ghost = digestOf('never uploaded');
    const noAction = await client.execute(ghost);
    assert.equal(noAction.status.code, Code.OK);
    assert.equal(noAction.response?.status?.code, Code.FAILED_PRECONDITION);
    assert.deepEqual(preconditionViolations(noAction.response!), [`MISSING blobs/${ghost.hash}/${ghost.size}`]);

    const missingFile = digestOf('a file nobody uploaded');
    const missingDir = digestOf('a directory nobody uploaded');
    const root = await client.directory({
      files: [{ name: 'gone.txt', digest: wire(missingFile) }],
      directories: [{ name: 'sub', digest: wire(missingDir) }],
    });
    const a = await client.action({ arguments: ['true'] }, root);
    const before = (await farm.api<{ builds: BuildRecord[] }>('/api/builds?limit=500')).builds.length;
    const r = await client.execute(a);
    assert.equal(r.response?.status?.code, Code.FAILED_PRECONDITION, JSON.stringify(r.response?.status));
    assert.deepEqual(preconditionViolations(r.response!).sort(), [`MISSING blobs/${missingDir.hash}/${missingDir.size}`, `MISSING blobs/${missingFile.hash}/${missingFile.size}`].sort());
    assert.equal((await farm.api<{ builds: BuildRecord[] }>('/api/builds?limit=500')).builds.length, before, 'no job was submitted');
  });

  it('refuses crafted input trees (.., absolute names, symlinks out) with INVALID_ARGUMENT before any agent sees them', async () => {
    const f = await client.put('x');
    for (const root of [
      await client.directory({ files: [{ name: '..', digest: wire(f) }] }),
      await client.directory({ files: [{ name: '/etc/cron.d/evil', digest: wire(f) }] }),
      await client.directory({ symlinks: [{ name: 'out', target: '../../../../tmp' }] }),
      await client.put(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])),
    ]) {
      const r = await client.execute(await client.action({ arguments: ['true'] }, root));
      assert.equal(r.status.code, Code.INVALID_ARGUMENT, `${root.hash}: ${r.status.details} ${JSON.stringify(r.response?.result?.exitCode)}`);
    }
    const weird = await client.action({ arguments: ['true'], environmentVariables: [{ name: 'A=B', value: '1' }], outputFiles: ['../x'] }, await client.directory({}));
    const r = await client.execute(weird);
    assert.equal(r.status.code, Code.INVALID_ARGUMENT);
    assert.match(r.status.details, /contains "="/);
    assert.ok(r.errorDetails, 'BadRequest details travel in grpc-status-details-bin');
  });

  it('runs an action on an agent: QUEUED, EXECUTING, COMPLETED with outputs, metadata, a build record; then a cache hit', async () => {
    const a = await shAction('tr a-z A-Z < in.txt > out/up.txt && mkdir -p gen/sub && echo g > gen/sub/g.txt && chmod +x gen/sub/g.txt && echo to-stderr >&2', {
      outputs: ['out/up.txt'],
      dirs: ['gen'],
      salt: 'happy',
    });
    const r = await client.execute(a);
    assert.equal(r.status.code, Code.OK, r.status.details);
    assert.deepEqual(r.stages, ['QUEUED', 'EXECUTING', 'COMPLETED']);
    const v2 = 'type.googleapis.com/build.bazel.remote.execution.v2';
    assert.deepEqual(r.typeUrls, [`${v2}.ExecuteOperationMetadata`, `${v2}.ExecuteOperationMetadata`, `${v2}.ExecuteOperationMetadata`, `${v2}.ExecuteResponse`]);
    const res = r.response!;
    assert.equal(res.status?.code ?? 0, Code.OK);
    assert.equal(res.cachedResult, false);
    assert.equal(res.result!.exitCode, 0);
    assert.equal(res.result!.executionMetadata!.worker, 'exec-1');
    const up = res.result!.outputFiles.find((f) => f.path === 'out/up.txt')!;
    assert.equal((await client.cas.getBlob({ hash: up.digest!.hash, size: up.digest!.sizeBytes }))!.toString(), 'INPUT HAPPY\n');
    const stderr = res.result!.stderrDigest!;
    assert.equal((await client.cas.getBlob({ hash: stderr.hash, size: stderr.sizeBytes }))!.toString(), 'to-stderr\n');
    const [gen] = res.result!.outputDirectories;
    assert.equal(gen!.path, 'gen');
    const tree = reapiProtos().tree.decode((await client.cas.getBlob({ hash: gen!.treeDigest!.hash, size: gen!.treeDigest!.sizeBytes }))!);
    assert.deepEqual(tree.root!.directories.map((d) => d.name), ['sub']);
    assert.deepEqual(tree.children[0]!.files.map((f) => [f.name, f.isExecutable]), [['g.txt', true]]);

    const { builds } = await farm.api<{ builds: BuildRecord[] }>('/api/builds?limit=500');
    const rec = builds.find((b) => b.id === r.name);
    assert.ok(rec, `operation ${r.name} is a build record`);
    assert.equal(rec.type, 'remote');
    assert.equal(rec.agent, 'exec-1');
    assert.equal(rec.result, 'success');

    const again = await client.execute(a);
    assert.deepEqual(again.stages, ['COMPLETED']);
    assert.equal(again.response!.cachedResult, true);
    assert.deepEqual(again.response!.result!.outputFiles, res.result!.outputFiles);
    const skipped = await client.execute(a, { skipCacheLookup: true });
    assert.equal(skipped.response!.cachedResult, false);
    assert.deepEqual(skipped.stages, ['QUEUED', 'EXECUTING', 'COMPLETED']);
  });

  const SYMLINKS_AND_EMPTY =
    'echo data > real.txt && ln -s real.txt link.txt && mkdir -p d/empty d/sub e && echo x > d/sub/f && ln -s sub/f d/l && ln -s ../real.txt d/up && ln -s d dl';
  const blob = async (d: { hash: string; sizeBytes: number } | null | undefined) => (await client.cas.getBlob({ hash: d!.hash, size: d!.sizeBytes }))!;
  const links = (l: Array<{ path: string; target: string }>) => l.map((s) => `${s.path} -> ${s.target}`);

  it('reports output symlinks as links (v2.0 fields for output_files/output_directories), symlinks inside a directory as SymlinkNodes, and empty directories', async () => {
    const r = await client.execute(await shAction(SYMLINKS_AND_EMPTY, { outputs: ['real.txt', 'link.txt'], dirs: ['d', 'e', 'dl'], salt: 'links-v20' }));
    const res = r.response!.result!;
    assert.equal(r.response!.status?.code ?? 0, Code.OK, JSON.stringify(r.response!.status));
    assert.deepEqual(res.outputFiles.map((f) => f.path), ['real.txt'], 'the link is not reported as the file it points to');
    assert.deepEqual(links(res.outputFileSymlinks), ['link.txt -> real.txt']);
    assert.deepEqual(links(res.outputDirectorySymlinks), ['dl -> d']);
    assert.deepEqual(res.outputSymlinks, [], 'output_symlinks is for output_paths clients (v2.1+)');
    assert.deepEqual(res.outputDirectories.map((o) => o.path), ['d', 'e']);
    const d = reapiProtos().tree.decode(await blob(res.outputDirectories[0]!.treeDigest));
    assert.deepEqual(d.root!.files, []);
    assert.deepEqual(d.root!.directories.map((x) => x.name), ['empty', 'sub']);
    assert.deepEqual(links(d.root!.symlinks.map((s) => ({ path: s.name, target: s.target }))), ['l -> sub/f', 'up -> ../real.txt']);
    const empty = d.children.find((c) => c.files.length === 0 && c.directories.length === 0 && c.symlinks.length === 0);
    assert.ok(empty, 'the empty subdirectory is a Directory of its own in the Tree');
    assert.equal(digestOf(reapiProtos().directory.encode(empty)).hash, d.root!.directories[0]!.digest!.hash);
    const e = reapiProtos().tree.decode(await blob(res.outputDirectories[1]!.treeDigest));
    assert.deepEqual([e.root!.files, e.root!.directories, e.root!.symlinks, e.children], [[], [], [], []], 'an empty output directory is a Tree with an empty root');
  });

  it('reports output_paths symlinks in output_symlinks (v2.1)', async () => {
    const r = await client.execute(await shAction(SYMLINKS_AND_EMPTY, { paths: ['real.txt', 'link.txt', 'd', 'e', 'dl'], salt: 'links-v21' }));
    const res = r.response!.result!;
    assert.equal(r.response!.status?.code ?? 0, Code.OK, JSON.stringify(r.response!.status));
    assert.deepEqual(links(res.outputSymlinks), ['dl -> d', 'link.txt -> real.txt']);
    assert.deepEqual([res.outputFileSymlinks, res.outputDirectorySymlinks], [[], []]);
    assert.deepEqual(res.outputDirectories.map((o) => o.path), ['d', 'e']);
  });

  for (const [what, script, o] of [
    ['an absolute target', 'echo ok > good.txt && ln -s /etc/passwd leak', { outputs: ['good.txt', 'leak'] }],
    ['a target climbing out of the work directory', 'mkdir d && ln -s ../../../etc/passwd d/up', { dirs: ['d'] }],
  ] as Array<[string, string, { outputs?: string[]; dirs?: string[] }]>) {
    it(`fails an action whose output symlink has ${what} with FAILED_PRECONDITION (absolute symlinks are DISALLOWED in Capabilities), uncached`, async () => {
      const a = await shAction(script, { ...o, salt: what });
      const r = await client.execute(a);
      assert.equal(r.response!.status!.code, Code.FAILED_PRECONDITION, JSON.stringify(r.response!.status));
      assert.match(r.response!.status!.message, /output symlink target .* is absolute or leads out of the work directory/);
      assert.deepEqual([r.response!.result!.outputFiles, r.response!.result!.outputFileSymlinks, r.response!.result!.outputDirectories], [[], [], []]);
      assert.equal((await client.execute(a)).response!.cachedResult, false);
    });
  }

  it("hands a remote action's job over with submitFresh, which still refuses an unknown type, a bad id and a payload the job schema refuses", async () => {
    const jobs = farm.master.jobs;
    const payload = { argv: ['/bin/true'] } as Parameters<typeof jobs.submitFresh>[2];
    const id = 'ra-00000000-0000-4000-8000-000000000001';
    await assert.rejects(jobs.submitFresh('no-such-type', id, payload), /unknown job type "no-such-type"/);
    await assert.rejects(jobs.submitFresh('remote', '12345', payload), /not a valid job id/);
    await assert.rejects(jobs.submitFresh('remote', '../../etc', payload), /not a valid job id/);
    await assert.rejects(jobs.submitFresh('remote', id, { ...payload, env: { 'A=B': 'x' } }), /env/);
    await assert.rejects(jobs.view(id, 'remote', false), /not found|no job/i, 'nothing was added by the refused calls');
    await jobs.submitFresh('remote', id, payload);
    await waitUntil(async () => (await jobs.view(id, 'remote', false)).done, { what: 'the fresh job to run', timeoutMs: 30_000 });
    assert.equal((await jobs.view(id, 'remote', false)).exitCode, 0);
  });

  it('follows many concurrent operations behind one pair of master listeners', async () => {
    const before = farm.master.listenerCount('build-dispatched');
    // Counted while the streams are open: each dispatch happens with its stream (and others) waiting.
    let most = 0;
    const count = () => (most = Math.max(most, farm.master.listenerCount('build-dispatched')));
    farm.master.on('build-dispatched', count);
    try {
      const actions = await Promise.all(Array.from({ length: 16 }, (_, i) => shAction(`echo ${i}`, { salt: `many-${i}` })));
      const results = await Promise.all(actions.map((a) => client.execute(a)));
      assert.deepEqual(results.map((r) => r.response?.result?.exitCode), actions.map(() => 0));
    } finally {
      farm.master.off('build-dispatched', count);
    }
    assert.equal(most, before + 1, 'no listener per stream');
    assert.equal(farm.master.listenerCount('build-dispatched'), before);
  });

  it('returns a failing action with its exit code and stderr, and does not cache it', async () => {
    const a = await shAction('echo "compile error: bad.c:1" >&2; exit 3', { salt: 'fails' });
    const r = await client.execute(a);
    assert.equal(r.response!.status?.code ?? 0, Code.OK);
    assert.equal(r.response!.result!.exitCode, 3);
    const d = r.response!.result!.stderrDigest!;
    assert.match((await client.cas.getBlob({ hash: d.hash, size: d.sizeBytes }))!.toString(), /compile error: bad.c:1/);
    const again = await client.execute(a);
    assert.equal(again.response!.cachedResult, false, 'a failed result is not served from the cache');
  });

  it('ends an action past its timeout with DEADLINE_EXCEEDED', async () => {
    const a = await shAction('echo started; sleep 30', { timeoutSec: 1, salt: 'timeout' });
    const r = await client.execute(a);
    assert.equal(r.response!.status!.code, Code.DEADLINE_EXCEEDED, JSON.stringify(r.response!.status));
    assert.equal(r.response!.result!.exitCode, 124);
  });

  it('lets a client that disconnected reattach with WaitExecution and get the result once', async () => {
    const gate = path.join(dir, 'gate-wait');
    const a = await shAction(`while [ ! -e ${gate} ]; do sleep 0.05; done; echo done`, { salt: 'wait' });
    const first = await client.execute(a, { until: (s) => s === 'EXECUTING' });
    assert.equal(first.status.code, Code.CANCELLED);
    assert.ok(first.name);
    const waiting = client.wait(first.name);
    const second = client.wait(first.name);
    await fsp.writeFile(gate, '');
    for (const w of [await waiting, await second]) {
      assert.equal(w.status.code, Code.OK, w.status.details);
      assert.equal(w.stages.filter((s) => s === 'COMPLETED').length, 1);
      assert.equal(w.response!.result!.exitCode, 0);
    }
    // After the end, a late WaitExecution still finds the stored response.
    const late = await client.wait(first.name);
    assert.deepEqual(late.stages, ['COMPLETED']);
    assert.equal(late.response!.result!.exitCode, 0);
  });

  it('keeps an operation across a master restart: WaitExecution on the restarted master gets the result once', async () => {
    const raw = farmConfigRaw({
      cas: { dir: path.join(dir, 'cas-restart'), prefix: '/cache', tokens: [CAS_TOKEN] },
      jobTypes: { remote: { attempts: 1, timeoutSec: 60 }, b2g: {} },
      remoteExecution: { defaultJobType: 'remote' },
    });
    const [httpPort, agentPort, grpcPort] = [await freePort(), await freePort(), await freePort()];
    Object.assign(raw.http as object, { port: httpPort });
    Object.assign(raw.agents as object, { port: agentPort });
    raw.grpc = { host: '127.0.0.1', port: grpcPort };
    const first = await new TestFarm(raw).start();
    let second: TestFarm | undefined;
    const c = new ReapiClient(first.addr.grpcUrl!, `${first.addr.httpUrl}/cache`, CAS_TOKEN);
    try {
      await first.agent({ name: 'survivor', jobTypes: ['remote'], casUrl: `${first.addr.httpUrl}/cache`, casToken: CAS_TOKEN, workDir: path.join(dir, 'work-restart') });
      const gate = path.join(dir, 'gate-restart');
      const input = await c.put('restart\n');
      const root = await c.directory({ files: [{ name: 'in.txt', digest: wire(input) }] });
      const running = path.join(dir, 'running-restart');
      const a = await c.action({ arguments: [SH, '-c', `touch ${running}; while [ ! -e ${gate} ]; do sleep 0.05; done; cat in.txt`], environmentVariables: [PATH] }, root);
      const started = await c.execute(a, { until: (s) => s === 'EXECUTING' });
      assert.ok(started.name);
      // The command runs (its inputs are on the agent) before the master goes away.
      await waitUntil(() => existsSync(running), { what: 'the command started', timeoutMs: 20_000 });
      await first.daemon.stop();
      second = await new TestFarm(raw).start();
      const waited = c.wait(started.name);
      await fsp.writeFile(gate, '');
      const w = await waited;
      assert.equal(w.status.code, Code.OK, w.status.details);
      assert.equal(w.stages.filter((s) => s === 'COMPLETED').length, 1);
      assert.equal(w.response!.status?.code ?? 0, Code.OK, JSON.stringify(w.response!.status));
      assert.equal(w.response!.result!.exitCode, 0);
      assert.equal(w.response!.result!.executionMetadata!.worker, 'survivor');
      const out = w.response!.result!.stdoutDigest!;
      assert.equal((await c.cas.getBlob({ hash: out.hash, size: out.sizeBytes }))!.toString(), 'restart\n');
    } finally {
      c.close();
      await first.stop();
      await second?.stop();
    }
  });
});
