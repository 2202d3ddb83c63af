import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { farmConfigRaw, TestFarm } from '../helpers/farm';

const DEPLOY = resolve(__dirname, '../../../deploy');

interface Rules {
  groups: Array<{ name: string; rules: Array<{ alert?: string; record?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }> }>;
}
interface Dashboard {
  panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
}

const rules = parseYaml(readFileSync(join(DEPLOY, 'prometheus-rules.yaml'), 'utf8')) as Rules;
const dashboard = JSON.parse(readFileSync(join(DEPLOY, 'grafana-dashboard.json'), 'utf8')) as Dashboard;
const ruleExprs = rules.groups.flatMap((g) => g.rules.map((r) => ({ where: `rule ${r.alert ?? r.record}`, expr: r.expr })));
const panelExprs = dashboard.panels.flatMap((p) => p.targets.map((t) => ({ where: `panel "${p.title}"`, expr: t.expr })));

function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\bspillway_[a-zA-Z0-9_]+/g)].map((m) => m[0]);
}

function promtool(): boolean {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('deploy/prometheus-rules.yaml and deploy/grafana-dashboard.json', () => {
  let farm: TestFarm;
  /** Metric name -> its TYPE, as a live master declares it on /metrics. */
  const declared = new Map<string, string>();

  before(async () => {
    // A master with everything that has metrics: a CAS and a pool.
    farm = await new TestFarm(
      farmConfigRaw({
        cas: { dir: mkdtempSync(join(tmpdir(), 'spillway-cas-')), anonymous: 'read-write' },
        pools: { local: { provider: 'local', maxInstances: 1, local: { preCreated: 0 } } },
        jobTypes: { b2g: { overflow: { pool: 'local' } } },
      }),
    ).start();
    const text = await (await fetch(`${farm.addr.httpUrl}/metrics`, { headers: farm.auth('read') })).text();
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) declared.set(m[1]!, m[2]!);
  });
  after(() => farm.stop());

  it('cover what operators alert on: queue wait, backlog with no capacity coming, stuck boots, AWS errors, lost agents, a full CAS', () => {
    const alerts = rules.groups.flatMap((g) => g.rules.map((r) => r.alert));
    for (const a of ['SpillwayQueueWaitHigh', 'SpillwayBacklogNoCapacityComing', 'SpillwayInstanceStuckBooting', 'SpillwayAwsApiErrorsFatal', 'SpillwayAgentsLost', 'SpillwayCasNearFull']) {
      assert.ok(alerts.includes(a), `missing alert ${a}`);
    }
    for (const g of rules.groups) for (const r of g.rules) assert.ok(r.annotations?.summary && r.labels?.severity, `${r.alert}: summary and severity`);
    assert.ok(dashboard.panels.length >= 10);
  });

  it('use only metrics a live master exposes on /metrics', () => {
    assert.ok(declared.size > 20, 'the scrape declared metrics');
    const unknown: string[] = [];
    for (const { where, expr } of [...ruleExprs, ...panelExprs]) {
      const names = metricNames(expr);
      assert.ok(names.length > 0, `${where} uses no spillway metric: ${expr}`);
      for (const name of names) {
        const base = name.replace(/_(bucket|sum|count)$/, '');
        const ok = declared.has(name) || (base !== name && declared.get(base) === 'histogram');
        if (!ok) unknown.push(`${where}: ${name}`);
      }
    }
    assert.deepEqual(unknown, [], 'metrics not on /metrics');
  });

  it('are valid PromQL and alert as intended (promtool check rules / test rules)', function () {
    if (!promtool()) {
      console.log('      skipped: promtool not found (apt-get install prometheus)');
      this.skip();
    }
    const dir = mkdtempSync(join(tmpdir(), 'spillway-promtool-'));
    execFileSync('promtool', ['check', 'rules', join(DEPLOY, 'prometheus-rules.yaml')], { stdio: 'pipe' });
    // The dashboard's queries, checked as recording rules.
    const panels = join(dir, 'panels.yaml');
    writeFileSync(panels, stringify({ groups: [{ name: 'panels', rules: panelExprs.map((p, i) => ({ record: `spillway:panel_${i}`, expr: p.expr })) }] }));
    execFileSync('promtool', ['check', 'rules', panels], { stdio: 'pipe' });
    // Backlog over threshold with nothing coming fires after 10 minutes; a booting instance stops it.
    const cases = join(dir, 'cases.yaml');
    writeFileSync(
      cases,
      stringify({
        rule_files: [join(DEPLOY, 'prometheus-rules.yaml')],
        evaluation_interval: '1m',
        tests: [
          {
            interval: '1m',
            input_series: [
              { series: 'spillway_overflow_over_threshold{pool="ec2",type="b2g",instance="m1"}', values: '1x30' },
              { series: 'spillway_overflow_over_threshold{pool="ec2",type="b2g",instance="m2"}', values: '1x30' },
              { series: 'spillway_overflow_over_threshold{pool="gpu",type="cuda",instance="m1"}', values: '1x30' },
              { series: 'spillway_instances{pool="gpu",state="booting",instance="m1"}', values: '1x30' },
              { series: 'spillway_instances_oldest_seconds{pool="gpu",state="booting",instance="m1"}', values: '0+60x30' },
            ],
            alert_rule_test: [
              { eval_time: '5m', alertname: 'SpillwayBacklogNoCapacityComing', exp_alerts: [] },
              {
                eval_time: '15m',
                alertname: 'SpillwayBacklogNoCapacityComing',
                exp_alerts: [
                  {
                    exp_labels: { severity: 'critical', pool: 'ec2', type: 'b2g' },
                    exp_annotations: {
                      summary: 'b2g is over its overflow threshold and pool ec2 brings no capacity',
                      description: rules.groups[0]!.rules.find((r) => r.alert === 'SpillwayBacklogNoCapacityComing')!.annotations!.description!.replace(/\{\{ \$labels\.pool \}\}/g, 'ec2'),
                    },
                  },
                ],
              },
              { eval_time: '9m', alertname: 'SpillwayInstanceStuckBooting', exp_alerts: [] },
              {
                eval_time: '11m',
                alertname: 'SpillwayInstanceStuckBooting',
                exp_alerts: [
                  {
                    exp_labels: { severity: 'warning', pool: 'gpu', state: 'booting' },
                    exp_annotations: {
                      summary: 'An instance of gpu has been booting for over 10 minutes',
                      description: rules.groups[0]!.rules.find((r) => r.alert === 'SpillwayInstanceStuckBooting')!.annotations!.description!,
                    },
                  },
                ],
              },
            ],
          },
        ],
      }),
    );
    try {
      execFileSync('promtool', ['test', 'rules', cases], { stdio: 'pipe' });
    } catch (err) {
      assert.fail(`promtool test rules: ${String((err as { stdout?: Buffer }).stdout ?? '')}${String((err as { stderr?: Buffer }).stderr ?? '')}`);
    }
  });
});
