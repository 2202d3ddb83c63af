import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { exportTraceCommand } from '../../src/cli/export-trace-command';
import { parseTrace } from '../../src/simulator';
import { farmConfigRaw, spawnCli, TestFarm } from '../helpers/farm';

const ROOT = join(__dirname, '..', '..', '..');
const FARM = join(ROOT, 'config', 'simulate-farm.yaml');

describe('cli: spillway simulate and export-trace', function () {
  this.timeout(60_000);

  it('simulate exits 2 naming the line of a bad trace, and writes the chart for a good one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'spillway-sim-'));
    writeFileSync(join(dir, 'bad.csv'), 'time,type,duration\n0,b2g,60\n10,b2g,-1\n');
    const bad = spawnCli(['simulate', '--config', FARM, '--trace', join(dir, 'bad.csv')]);
    assert.equal((await bad.exited).code, 2, bad.output());
    assert.match(bad.output(), /invalid trace .*bad\.csv:\n {2}line 3: duration: must be a positive duration, got "-1"/);

    const badPolicy = spawnCli(['simulate', '--config', FARM, '--trace', join(dir, 'bad.csv'), '--policy', 'x=quiet=soon']);
    assert.equal((await badPolicy.exited).code, 2, badPolicy.output());
    assert.match(badPolicy.output(), /policy x: quiet=soon: expected a duration/);

    writeFileSync(join(dir, 'ok.csv'), 'time,type,duration\n0,b2g,600\n0,b2g,600\n5,linux64,60\n');
    const chart = join(dir, 'out.svg');
    const ok = spawnCli(['simulate', '--config', FARM, '--trace', join(dir, 'ok.csv'), '--policy', 'a', '--policy', 'b=quiet=5m', '--chart', chart]);
    assert.equal((await ok.exited).code, 0, ok.output());
    assert.match(ok.output(), /^b2g +a /m);
    const svg = readFileSync(chart, 'utf8');
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.equal(svg.match(/<polyline /g)?.length, 4, 'backlog and instances for each of the two policies');
  });

  it('export-trace pages through /api/builds with its cursor and keeps only finished builds since the cutoff', async () => {
    const farm = await new TestFarm(farmConfigRaw()).start();
    try {
      await farm.agent({ name: 'a1', jobTypes: ['b2g', 'linux64'], executors: 2 });
      const ids = await Promise.all([1, 2, 3, 4, 5].map((i) => farm.submit({ type: i % 2 ? 'b2g' : 'linux64', shell: `sleep 0.0${i}` })));
      await Promise.all(ids.map((id) => farm.finished(id)));
      const out = new PassThrough();
      const err = new PassThrough();
      assert.equal(await exportTraceCommand({ master: farm.addr.httpUrl, since: '1h' }, out, err, { pageSize: 2 }), 0);
      const trace = parseTrace(out.read().toString(), 'export', new Set(['b2g', 'linux64']));
      assert.equal(trace.length, 5);
      assert.deepEqual(trace.map((j) => j.type).sort(), ['b2g', 'b2g', 'b2g', 'linux64', 'linux64']);
      assert.ok(trace.every((j, i) => i === 0 || j.at >= trace[i - 1]!.at), 'sorted by arrival');
      assert.match(err.read().toString(), /5 build\(s\) since .* from 3 page\(s\)/);

      const later = new PassThrough();
      await exportTraceCommand({ master: farm.addr.httpUrl, since: '1h' }, later, new PassThrough(), { now: Date.now() + 2 * 3_600_000, pageSize: 2 });
      assert.equal(later.read().toString().trim().split('\n').length, 1, 'only the header: every build is older than the cutoff');
      await assert.rejects(exportTraceCommand({ master: farm.addr.httpUrl, since: 'a week' }, later, later), /--since must be a duration/);
    } finally {
      await farm.stop();
    }
  });

  it('export-trace refuses an answer that is not a page of builds, and a cursor that does not move', async () => {
    const build = { type: 'b2g', state: 'finished', queuedAt: Date.now() - 1000, dispatchedAt: Date.now() - 900, durationMs: 500 };
    const answers: unknown[] = [{ builds: [{ ...build, durationMs: 'long' }], next: null }, { builds: [build], next: 'c1' }, { builds: [build], next: 'c1' }];
    const server = createServer((_req, res) => res.setHeader('content-type', 'application/json').end(JSON.stringify(answers.shift())));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const master = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      await assert.rejects(exportTraceCommand({ master, since: '1h' }, new PassThrough(), new PassThrough()), /did not answer a page of builds: builds\.0\.durationMs/);
      await assert.rejects(exportTraceCommand({ master, since: '1h' }, new PassThrough(), new PassThrough()), /gave the same cursor twice \(c1\)/);
    } finally {
      server.close();
    }
  });
});
