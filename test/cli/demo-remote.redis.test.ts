import assert from 'node:assert/strict';
import { CasClient, parseActionResult, parseDigestString } from '../../src/cas';
import type { BuildRecord } from '../../src/master';
import { actionNameOf, expectedOutput } from '../../src/cli/demo-actions';
import { needBazel } from '../helpers/bazel';
import { spawnCli, type CliProcess } from '../helpers/farm';
import { redisUrl } from '../setup/root-hooks';

const PORTS = { SPILLWAY_HTTP_PORT: '0', SPILLWAY_AGENT_PORT: '0', SPILLWAY_GRPC_PORT: '0' };
const ACTIONS = 24;

/** What the running demo's own API says about its remote actions: where each ran, and what it wrote. */
async function remoteActions(p: CliProcess): Promise<Array<BuildRecord & { action: string | undefined; output: string | undefined }>> {
  const httpUrl = /HTTP API (http:\/\/\S+),/.exec(p.output())![1]!;
  const casToken = /--remote_header=Authorization=Bearer (\w+)/.exec(p.output())![1]!;
  const cas = new CasClient({ baseUrl: `${httpUrl}/cache`, token: casToken });
  const res = await fetch(`${httpUrl}/api/builds?type=remote&limit=1000`);
  assert.equal(res.status, 200);
  const { builds } = (await res.json()) as { builds: BuildRecord[] };
  return Promise.all(
    builds.map(async (b) => {
      assert.ok(b.actionResult, `build ${b.id} has a result blob`);
      const result = parseActionResult(JSON.parse((await cas.getBlob(parseDigestString(b.actionResult)))!.toString()));
      const file = result?.outputFiles[0];
      const output = file && (await cas.getBlob(file.digest))?.toString();
      return { ...b, action: file && actionNameOf(file.path), output };
    }),
  );
}

/**
 * Runs `spillway demo --remote` for real with `client`, waits for its summary, checks from
 * the demo's /api/builds that the burst ran every action exactly once, some on the cloud pool
 * and some on-prem, with the right outputs, then stops it with Ctrl-C (SIGINT).
 */
async function demoRun(client: 'builtin' | 'bazel'): Promise<string> {
  // 1.5 s per action: the on-prem agents' 3 executors alone need 12 s, more than the cloud pool takes to wake.
  const p = spawnCli(['demo', '--remote', '--client', client, '--actions', String(ACTIONS), '--action-ms', '1500', '--summary-every', '1'], { REDIS_URL: redisUrl(), ...PORTS });
  try {
    await p.waitForOutput(/the farm stays up/);
    const out = p.output();
    assert.match(out, /^ {2}backlog: \d+ remote actions waiting/m);
    assert.match(out, /^ {2}cloud: waking local-cloud-/m);
    assert.match(out, /^ {2}ok {3}action a\d+ +local-cloud-\d +CLOUD local-cloud-\d/m);
    assert.match(out, new RegExp(`^  second round: ${ACTIONS} of ${ACTIONS} actions served from the action cache, 0 ran again$`, 'm'));
    const summary = /^spillway demo: summary: (\d+) actions, (\d+) ran: on-prem (\d+) .*, cloud (\d+) .*; outputs correct (\d+)\/(\d+); second round: (\d+) cached, (\d+) ran$/m.exec(out);
    assert.ok(summary, out);
    assert.deepEqual(summary.slice(1).map(Number).filter((_, i) => i !== 2 && i !== 3), [ACTIONS, ACTIONS, ACTIONS, ACTIONS, ACTIONS, 0]);
    assert.doesNotMatch(out, /PROBLEM/);

    const builds = await remoteActions(p);
    assert.equal(builds.length, ACTIONS, JSON.stringify(builds.map((b) => [b.action, b.agent])));
    const names = builds.map((b) => b.action).sort();
    assert.deepEqual(names, Array.from({ length: ACTIONS }, (_, i) => `a${String(i + 1).padStart(2, '0')}`), 'every action exactly once');
    for (const b of builds) {
      assert.equal(b.result, 'success', `${b.action}: ${b.reason}`);
      assert.equal(b.output, expectedOutput(b.action!), `${b.action}'s output`);
    }
    const cloud = builds.filter((b) => b.location === 'cloud');
    const onprem = builds.filter((b) => b.location === 'onprem');
    assert.ok(cloud.length > 0 && onprem.length > 0, `cloud ${cloud.length}, on-prem ${onprem.length}`);
    assert.ok(cloud.every((b) => /^local-cloud-\d$/.test(b.agent) && b.instanceId === b.agent), JSON.stringify(cloud.map((b) => [b.agent, b.instanceId])));
    assert.ok(onprem.every((b) => /^onprem-[12]$/.test(b.agent)));
    // The narrator's counts are the API's.
    assert.equal(Number(summary[3]), onprem.length);
    assert.equal(Number(summary[4]), cloud.length);
  } finally {
    p.child.kill('SIGINT');
  }
  const { code } = await p.exited;
  assert.equal(code, 0, p.output());
  // The cloud pool's agents (separate processes, CAS token on fd 3) ended cleanly, nothing warned.
  assert.doesNotMatch(p.output(), /^ {2}(error|warn): /m, p.output());
  return p.output();
}

describe('cli: spillway demo --remote (a burst of REAPI actions overflowing to the cloud pool)', function () {
  this.timeout(60_000);

  it('refuses bad flags before starting anything', async () => {
    const bad = [['--client', 'gradle'], ['--actions', '0'], ['--actions', '100000'], ['--actions', 'x'], ['--action-ms', '-5'], ['--action-ms', '86400000']];
    for (const args of bad) {
      const p = spawnCli(['demo', '--remote', ...args, '--exit-when-done'], { REDIS_URL: redisUrl(), ...PORTS });
      const exited = await Promise.race([p.exited, p.waitForOutput(/HTTP API/).then(() => undefined, () => undefined)]);
      if (!exited) p.child.kill('SIGINT');
      assert.equal((await p.exited).code, 2, `${args.join(' ')}: ${p.output()}`);
      assert.doesNotMatch(p.output(), /HTTP API/);
      assert.match(p.output(), /is invalid/);
    }
  });

  it('with the built-in REAPI client: the backlog wakes the cloud pool, every action runs once (some on the cloud), outputs correct, the second round all cached', async () => {
    await demoRun('builtin');
  });

  describe('with Debian\'s Bazel (--remote_executor, --jobs as high as the burst)', function () {
    before(async function () {
      await needBazel(this);
    });

    it('the same, and the rebuild after bazel clean is all remote cache hits', async () => {
      const out = await demoRun('bazel');
      // Bazel's own counts: every genrule ran remotely, then came from the remote cache.
      assert.match(out, new RegExp(`^  bazel: \\d+ processes: .*\\b${ACTIONS} remote\\b(?! cache)`, 'm'));
      assert.match(out, new RegExp(`^  bazel: \\d+ processes: .*\\b${ACTIONS} remote cache hit`, 'm'));
    });
  });
});
