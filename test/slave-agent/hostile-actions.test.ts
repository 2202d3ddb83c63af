import { strict as assert } from 'node:assert';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CasClient, digestOf, digestOfDirectory, encodeDirectory, type Digest, type DirectoryNode } from '../../src/cas';
import { parseAgentOptions } from '../../src/config';
import { runProcess } from '../../src/executor';
import { createLogger, type LogEntry } from '../../src/lib';
import { describeResult, type AssignFrame, type JobPayload } from '../../src/protocol';
import { Agent, type AgentDeps } from '../../src/slave-agent';
import { startCasServer, type CasServer } from '../cas/http-server';
import { FakeMaster, type MasterSide } from './fake-master';

const TOKEN = 'hostile-actions-token';

/**
 * Crafted actions and failures at every stage of an action's life, against a real agent, a
 * real CAS over HTTP and real processes: each fails its own job with a reason, and the agent
 * goes on to run the next job. Without the agent's last-resort guard a throw in a build
 * rejects a promise nobody handles, which kills the agent process (and fails this suite).
 */
describe('slave-agent: hostile actions fail their job, never the agent', function () {
  this.timeout(20_000);
  let master: FakeMaster;
  let cas: CasServer;
  let remote: CasClient;
  let dir: string;
  let entries: LogEntry[];
  let agent: Agent | undefined;
  let proxy: Server | undefined;
  let n = 0;

  beforeEach(async () => {
    master = await FakeMaster.start();
    cas = await startCasServer();
    remote = new CasClient({ baseUrl: cas.url });
    dir = mkdtempSync(join(tmpdir(), 'spillway-hostile-'));
    entries = [];
  });
  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
    if (proxy) await new Promise((r) => proxy!.close(r));
    proxy = undefined;
    await master.close();
    await cas.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function connect(options: Record<string, unknown> = {}, overrides: Partial<AgentDeps> = {}): Promise<MasterSide> {
    agent = new Agent({
      options: parseAgentOptions({
        master: master.url,
        token: TOKEN,
        name: 'hostile-1',
        jobTypes: ['b2g'],
        executors: 2,
        workDir: join(dir, 'work'),
        casUrl: cas.url,
        cacheDir: join(dir, 'cache'),
        ...options,
      }),
      log: createLogger({ silent: true, level: 'debug', sink: (e) => entries.push(e) }),
      host: { os: 'linux', arch: 'x64', cpus: 2, memoryMb: 1024 },
      baseEnv: { PATH: '/usr/local/bin:/usr/bin:/bin' },
      backoff: { baseMs: 5, maxMs: 20 },
      killGraceMs: 300,
      ...overrides,
    });
    void agent.start().catch(() => undefined);
    const side = await master.connection(0);
    await side.take('hello');
    const welcomed = once(agent, 'welcomed');
    side.welcome();
    await welcomed;
    return side;
  }

  async function put(data: Buffer): Promise<Digest> {
    const digest = digestOf(data);
    await remote.uploadMissing([{ digest, data }]);
    return digest;
  }
  /** A directory blob exactly as given: the encoder would refuse the hostile ones. */
  const raw = (node: Record<string, unknown>) => put(Buffer.from(JSON.stringify({ files: [], directories: [], symlinks: [], ...node })));
  const tree = async (node: DirectoryNode) => put(encodeDirectory(node));
  const empty = () => tree({ files: [], directories: [], symlinks: [] });

  function action(inputRoot: Digest, over: Partial<JobPayload> = {}, outputs: { files?: string[]; dirs?: string[] } = {}): AssignFrame {
    const jobId = `h${n++}`;
    return {
      type: 'assign',
      queue: 'b2g',
      jobId,
      lockToken: `lock-${jobId}`,
      attempt: 1,
      timeoutSec: 10,
      payload: {
        argv: ['sh', '-c', 'echo ran'],
        ...over,
        action: { inputRoot, outputFiles: outputs.files ?? [], outputDirs: outputs.dirs ?? [], cacheFailed: false },
      } as JobPayload,
    };
  }

  /** Sends the job, returns its result, and proves the agent still runs a plain job afterwards. */
  async function outcome(side: MasterSide, frame: AssignFrame) {
    side.send(frame);
    const finished = await side.take('finished', (f) => f.jobId === frame.jobId);
    const next: AssignFrame = { ...frame, jobId: `${frame.jobId}-next`, lockToken: 'next', payload: { shell: 'echo alive' } };
    side.send(next);
    assert.equal((await side.take('finished', (f) => f.jobId === next.jobId)).result.exitCode, 0, 'the agent runs the next job');
    return finished.result;
  }

  it('a missing input root fails the job with the reason', async () => {
    const side = await connect();
    const r = await outcome(side, action(digestOf('no such directory')));
    assert.match(r.error ?? '', /cannot materialize the input tree: .*not in the local cache nor on the master/);
    assert.match(describeResult(r), /^could not start: /);
  });

  it('names with "..", "/" or nothing, and a blob that does not decode, fail the job', async () => {
    const side = await connect();
    const file = { digest: await put(Buffer.from('x')), executable: false };
    for (const [label, node, why] of [
      ['dot-dot file', { files: [{ name: '..', ...file }] }, /invalid entry name/],
      ['slash dir', { directories: [{ name: 'a/b', digest: (await empty()) }] }, /invalid entry name/],
      ['empty name', { files: [{ name: '', ...file }] }, /invalid entry name/],
      ['escaping symlink', { symlinks: [{ name: 'up', target: '../../etc' }] }, /symlink/],
    ] as const) {
      const r = await outcome(side, action(await raw(node as Record<string, unknown>)));
      assert.match(r.error ?? '', why, label);
    }
    const garbage = await outcome(side, action(await put(Buffer.from('\x00not a directory node'))));
    assert.match(garbage.error ?? '', /directory blob is not JSON/);
    const shapeless = await outcome(side, action(await put(Buffer.from('{"files":7}'))));
    assert.match(shapeless.error ?? '', /lacks files\/directories\/symlinks/);
  });

  it('a tree deeper than the configured limit, or with too many entries, fails the job', async () => {
    const side = await connect({ inputMaxDepth: 3, inputMaxEntries: 100 });
    let deep = await empty();
    for (let i = 0; i < 5; i++) deep = await tree({ files: [], directories: [{ name: 'd', digest: deep }], symlinks: [] });
    assert.match((await outcome(side, action(deep))).error ?? '', /deeper than 3 directories/);
    // One directory referenced eight times per level: 4 small blobs, 584 directories when placed.
    let bomb = await empty();
    for (let i = 0; i < 3; i++) {
      const node = { files: [], directories: [...'abcdefgh'].map((name) => ({ name, digest: bomb })), symlinks: [] };
      bomb = await tree(node);
      assert.deepEqual(digestOfDirectory(node), bomb);
    }
    const r = await outcome(side, action(bomb, {}, {}));
    assert.match(r.error ?? '', /more than 100 entries/);
    // The limits bound only the tree: a shallow, small one still runs.
    assert.equal((await outcome(side, action(await empty()))).exitCode, 0);
  });

  it('a runner that throws (spawn stage) fails the job; plain and action jobs alike', async () => {
    const side = await connect({}, {
      runner: (spec, onOutput, deps) => {
        if (JSON.stringify(spec.argv ?? spec.shell).includes('never')) throw new Error('spawn exploded');
        return runProcess(spec, onOutput, deps);
      },
    });
    const plain: AssignFrame = { ...action(await empty()), payload: { shell: 'echo never' } };
    const p = await outcome(side, plain);
    assert.match(p.error ?? '', /agent error: spawn exploded/);
    assert.ok(entries.some((e) => e.event === 'agent.build-error' && e.jobId === plain.jobId));
    const a = await outcome(side, action(await empty(), { argv: ['sh', '-c', 'echo never'] }));
    assert.match(a.error ?? '', /cannot start the command: spawn exploded/);
  });

  it('outputs that cannot be collected fail the job after the command ran', async () => {
    const side = await connect();
    const r = await outcome(side, action(await empty(), {}, { files: ['x'.repeat(300)] }));
    assert.equal(r.error, undefined);
    assert.equal(r.exitCode, 1);
    assert.match(r.failure ?? '', /cannot collect the outputs: ENAMETOOLONG/);
    assert.match(describeResult(r), /cannot collect the outputs.*\(exit code 1\)/);
  });

  it('results that cannot be uploaded fail the job after the command ran', async () => {
    // Reads reach the CAS, writes are refused: the inputs arrive, the upload fails.
    proxy = createServer((req, res) => {
      if (req.method === 'PUT') {
        req.resume();
        res.writeHead(403).end('writes refused by test');
        return;
      }
      const target = new URL(cas.url);
      const up = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      req.pipe(up);
    }).listen(0, '127.0.0.1');
    await once(proxy, 'listening');
    const root = await tree({ files: [{ name: 'in.txt', digest: await put(Buffer.from('input')), executable: false }], directories: [], symlinks: [] });
    const side = await connect({ casUrl: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}` });
    const r = await outcome(side, action(root, { argv: ['sh', '-c', 'cat in.txt > out.txt; echo made'] }, { files: ['out.txt'] }));
    assert.equal(r.exitCode, 1);
    assert.match(r.failure ?? '', /cannot store or upload the results: .*403/);
  });

  it('an output escaping the work dir (symlink out, fifo) fails the job with exit code and reason', async () => {
    const side = await connect();
    const leak = await outcome(side, action(await empty(), { argv: ['sh', '-c', 'ln -s /etc/passwd leak.txt'] }, { files: ['leak.txt'] }));
    assert.equal(leak.exitCode, 1);
    assert.match(leak.failure ?? '', /output path escapes the work directory: leak\.txt/);
    assert.match(describeResult(leak), /escapes the work directory: leak\.txt \(exit code 1\)/);
    const fifo = await outcome(side, action(await empty(), { argv: ['sh', '-c', 'mkdir out && mkfifo out/pipe'] }, { dirs: ['out'] }));
    assert.equal(fifo.exitCode, 1);
    assert.match(fifo.failure ?? '', /special file in output directory: out\/pipe/);
    // A failing command keeps its own exit code, and the rejection is still said.
    const failing = await outcome(side, action(await empty(), { argv: ['sh', '-c', 'ln -s / up; exit 4'] }, { dirs: ['up'] }));
    assert.equal(failing.exitCode, 4);
    assert.match(failing.failure ?? '', /escapes the work directory: up/);
  });
});
