import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { policyConfigs, simulateCommand } from '../../src/cli/simulate-command';
import { parseConfig } from '../../src/config';
import { parsePolicy, parseTrace, simulate, TRACE_EPOCH, type TraceJob } from '../../src/simulator';

const ROOT = join(__dirname, '..', '..', '..');
const FARM = join(ROOT, 'config', 'simulate-farm.yaml');
const SAMPLE = join(ROOT, 'config', 'sample-trace.csv');

/** One on-prem executor and a pool of up to 3 one-executor instances that b2g overflows into. */
function farm(overflow: Record<string, unknown> = {}, pool: Record<string, unknown> = {}) {
  return parseConfig(
    {
      agents: { token: 'test-token-0123456789' },
      jobTypes: { b2g: { overflow: { pool: 'cloud', minBacklog: 1, ...overflow } }, linux64: {} },
      pools: { cloud: { provider: 'ec2', maxInstances: 3, quietPeriodMin: 10, ec2: { region: 'eu-west-1', launchTemplate: { name: 't' }, subnetIds: ['s'] }, price: { onDemandPerHour: 1 }, ...pool } },
      simulation: { onprem: [{ count: 1, jobTypes: ['b2g', 'linux64'] }], pools: { cloud: { launchSec: 60, wakeSec: 30, resumeSec: 10 } } },
    },
    {},
  );
}

const jobs = (...spec: Array<[number, string, number]>): TraceJob[] => spec.map(([s, type, min]) => ({ at: TRACE_EPOCH + s * 1000, type, durationMs: min * 60_000 }));

describe('simulate: policies on simulated time', () => {
  it('overflows only past the rule, launches once and suspends after the quiet period, through the real decision code', async () => {
    // 4 b2g jobs of 10 min at once: one runs on-prem, 3 wait; 3 launches come up 60 s later.
    const r = await simulate(farm(), jobs([0, 'b2g', 10], [0, 'b2g', 10], [0, 'b2g', 10], [0, 'b2g', 10]));
    const b2g = r.types.find((t) => t.type === 'b2g')!;
    assert.equal(b2g.onprem.builds, 1);
    assert.equal(b2g.overflowed, 3);
    assert.equal(b2g.cloud.p50Ms, 60_000);
    assert.equal(r.pools[0]!.launches, 3);
    // Up from 0 s to the end of the build (11 min) plus the 10 min quiet period, each.
    assert.equal(Math.round(r.pools[0]!.runningHours * 60), 3 * 21);
    assert.equal(r.cost, r.pools[0]!.runningHours);

    const strict = await simulate(farm({ minBacklog: 4 }), jobs([0, 'b2g', 10], [0, 'b2g', 10], [0, 'b2g', 10], [0, 'b2g', 10]));
    assert.equal(strict.types.find((t) => t.type === 'b2g')!.overflowed, 0, 'a backlog of 3 is under minBacklog 4');
    assert.equal(strict.pools[0]!.launches, 0);

    const capped = await simulate(farm({}, { maxInstances: 1 }), jobs([0, 'b2g', 10], [0, 'b2g', 10], [0, 'b2g', 10], [0, 'b2g', 10]));
    assert.equal(capped.pools[0]!.launches, 1);
    const typeCapped = await simulate(farm({ maxInstances: 1 }), jobs([0, 'b2g', 10], [0, 'b2g', 10], [0, 'b2g', 10], [0, 'b2g', 10]));
    assert.equal(typeCapped.pools[0]!.launches, 1, "the type's cap holds while its instance is busy, not only at the first launch");
    const linux = await simulate(farm(), jobs([0, 'linux64', 10], [0, 'linux64', 10]));
    assert.equal(linux.pools[0]!.launches, 0, 'a type without overflow never gets cloud capacity');
    assert.equal(linux.types[0]!.onprem.maxMs, 600_000);
  });

  it('wakes a hibernated instance (resume time) before launching, and counts suspended hours', async () => {
    const r = await simulate(farm({}, { maxInstances: 1 }), jobs([0, 'b2g', 5], [0, 'b2g', 5], [3600, 'b2g', 5], [3600, 'b2g', 5]));
    const p = r.pools[0]!;
    assert.equal(p.launches, 1);
    assert.equal(p.wakes, 1);
    const b2g = r.types.find((t) => t.type === 'b2g')!;
    assert.equal(b2g.cloud.maxMs, 60_000, 'the launch');
    assert.equal(b2g.cloud.p50Ms, 10_000, 'the resume');
    assert.ok(p.suspendedHours > 0.5, String(p.suspendedHours));
  });

  it('runs the sample trace the same way every time, and a shorter quiet period costs less', async () => {
    const variants = policyConfigs(readFileSync(FARM, 'utf8'), FARM, ['base', 'quiet15=quiet=15m'], {});
    const trace = parseTrace(readFileSync(SAMPLE, 'utf8'), SAMPLE, new Set(Object.keys(variants[0]!.config.jobTypes)));
    const a = await simulate(variants[0]!.config, trace);
    const b = await simulate(variants[0]!.config, trace);
    assert.deepEqual(a, b);
    const q = await simulate(variants[1]!.config, trace);
    assert.ok(q.pools[0]!.runningHours < a.pools[0]!.runningHours, `${q.pools[0]!.runningHours} < ${a.pools[0]!.runningHours}`);
    assert.ok(q.pools[0]!.wakes > a.pools[0]!.wakes);
  });

  it('parses policies and refuses unknown keys, scopes and values', () => {
    assert.deepEqual(parsePolicy('short=quiet=15m,b2g.minBacklog=4'), {
      ok: true,
      policy: { name: 'short', spec: 'quiet=15m,b2g.minBacklog=4', overrides: [{ key: 'quiet', value: '15m' }, { key: 'b2g.minBacklog', value: '4' }] },
    });
    assert.equal(parsePolicy('bad name=quiet=1m').ok, false);
    assert.equal(parsePolicy('p=quiet').ok, false);
    const text = readFileSync(FARM, 'utf8');
    assert.throws(() => policyConfigs(text, FARM, ['p=quiet=15'], {}), /quiet=15: expected a duration/);
    assert.throws(() => policyConfigs(text, FARM, ['p=colour=red'], {}), /unknown key/);
    assert.throws(() => policyConfigs(text, FARM, ['p=win32.minBacklog=2'], {}), /no pool or job type "win32"/);
    assert.throws(() => policyConfigs(text, FARM, ['p=suspend=sleep'], {}), /hibernate, stop or terminate/);
    assert.throws(() => policyConfigs(text, FARM, ['p=b2g.minBacklog=0'], {}), /with policy p[\s\S]*minBacklog/);
    assert.throws(() => policyConfigs(text, FARM, ['a', 'a=quiet=1m'], {}), /two policies are named "a"/);
    const [v] = policyConfigs(text, FARM, ['p=ec2-builders.quiet=90s,suspend=stop,b2g.minOldestWait=2m,resume=5s'], {});
    assert.equal(v!.config.pools['ec2-builders']!.quietPeriodMin, 1.5);
    assert.equal(v!.config.pools['ec2-builders']!.suspend, 'stop');
    assert.equal(v!.config.jobTypes.b2g!.overflow!.minOldestWaitSec, 120);
    assert.equal(v!.config.simulation.pools['ec2-builders']!.resumeSec, 5);
  });

  it('prints the comparison with the best of each column marked, and JSON', async () => {
    const out = new PassThrough();
    const err = new PassThrough();
    assert.equal(await simulateCommand({ config: FARM, trace: SAMPLE, policy: ['base', 'short=quiet=15m'] }, {}, out, err), 0);
    const text = out.read().toString();
    assert.match(text, /^b2g +base /m);
    assert.match(text, /^short +ec2-builders .*\d\*/m, text);
    const json = new PassThrough();
    await simulateCommand({ config: FARM, trace: SAMPLE, json: true }, {}, json, err);
    const parsed = JSON.parse(json.read().toString()) as { results: Array<{ policy: string; pools: unknown[] }> };
    assert.equal(parsed.results[0]!.policy, 'config');
    assert.equal(parsed.results[0]!.pools.length, 1);
  });
});
