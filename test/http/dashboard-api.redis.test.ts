import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Overview } from '../../src/http';
import { MasterMetrics } from '../../src/http/metrics';
import type { InstanceRecord } from '../../src/provisioner';
import { farmConfigRaw, TestFarm } from '../helpers/farm';
import { parsePrometheus } from '../helpers/prometheus';

/** Reads server-sent events from `url` until `until` accepts one; resolves that event's data. */
async function nextOverview(url: string, until: (o: Overview) => boolean): Promise<Overview> {
  const ac = new AbortController();
  const res = await fetch(url, { signal: ac.signal });
  assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const data = /^event: overview\ndata: (.*)$/s.exec(event)?.[1];
        if (data) {
          const o = JSON.parse(data) as Overview;
          if (until(o)) return o;
        }
      }
    }
  } finally {
    ac.abort();
  }
  throw new Error('event stream ended');
}

describe('dashboard JSON APIs, live events and /metrics', () => {
  let farm: TestFarm;
  const finished = (id: string) => farm.finished(id);

  before(async () => {
    farm = await new TestFarm(
      farmConfigRaw({
        cas: { dir: mkdtempSync(join(tmpdir(), 'spillway-cas-')), anonymous: 'read-write' },
        dashboard: { sampleSec: 1 },
      }),
    ).start();
    await farm.agent({ name: 'rack-1', jobTypes: ['b2g'], location: 'onprem' });
    await farm.agent({ name: 'ec2-1', jobTypes: ['linux64'], location: 'cloud' });
  });
  after(() => farm.stop());

  it('pushes the overview at once and again when a build is dispatched and finishes', async () => {
    const url = `${farm.addr.httpUrl}/api/events`;
    const first = await nextOverview(url, () => true);
    assert.deepEqual(first.agents.map((a) => [a.name, a.location]).sort(), [['ec2-1', 'cloud'], ['rack-1', 'onprem']]);
    assert.equal(first.rulesEditable, false, 'no admin token and no pools: rules are read-only');

    let id = '';
    const seen = nextOverview(url, (o) => o.builds.some((b) => b.id === id && b.state === 'finished'));
    id = await farm.submit({ type: 'linux64', shell: 'echo hi' });
    const o = await seen;
    const b = o.builds.find((x) => x.id === id)!;
    assert.equal(b.location, 'cloud');
    assert.equal(b.agent, 'ec2-1');
    assert.equal(b.result, 'success');
  });

  it('serves the overview, history and cost as JSON', async () => {
    const id = await farm.submit({ type: 'b2g', shell: 'true' });
    await finished(id);
    const o = await farm.api<Overview>('/api/overview');
    assert.deepEqual(o.queues.map((q) => [q.type, q.overflow]).sort(), [['b2g', null], ['linux64', null]]);
    assert.equal(o.builds.find((b) => b.id === id)?.location, 'onprem');
    assert.equal(o.cost.today.pools.length, 0);

    // Samples are taken every second; the pushed overview says when the newest was.
    await nextOverview(`${farm.addr.httpUrl}/api/events`, (x) => x.historyAt !== null);
    const { samples } = await farm.api<{ samples: Array<{ at: number; backlog: Record<string, number> }> }>('/api/history?hours=1');
    assert.ok(samples.length >= 1);
    assert.deepEqual(Object.keys(samples[0]!.backlog).sort(), ['b2g', 'linux64']);
    const bad = await fetch(`${farm.addr.httpUrl}/api/history?hours=-1`);
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'SPILLWAY_E_BAD_REQUEST');
  });

  it('serves the page and its assets from the master itself, nothing else', async () => {
    const page = await fetch(`${farm.addr.httpUrl}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type')!, /^text\/html/);
    const html = await page.text();
    assert.doesNotMatch(html, /https?:\/\//, 'no external (CDN) references');
    for (const asset of ['app.js', 'charts.js', 'style.css']) {
      assert.ok(html.includes(`/assets/${asset}`));
      assert.equal((await fetch(`${farm.addr.httpUrl}/assets/${asset}`)).status, 200);
    }
    assert.equal((await fetch(`${farm.addr.httpUrl}/assets/index.html`)).status, 404);
    assert.equal((await fetch(`${farm.addr.httpUrl}/assets/..%2Fpackage.json`)).status, 404);
    assert.equal((await fetch(`${farm.addr.httpUrl}/log?type=b2g&id=x`)).status, 200);
  });

  it('exposes Prometheus metrics: queues, dispatch latency, builds by location and result, CAS', async () => {
    const id = await farm.submit({ type: 'b2g', shell: 'exit 3' });
    await finished(id);
    const blob = Buffer.from('a cached object');
    const hash = createHash('sha256').update(blob).digest('hex');
    await fetch(`${farm.addr.httpUrl}/cas/${hash}`, { method: 'PUT', body: blob });
    await fetch(`${farm.addr.httpUrl}/cas/${hash}`);
    await fetch(`${farm.addr.httpUrl}/cas/${'1'.repeat(64)}`);

    const res = await fetch(`${farm.addr.httpUrl}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
    const m = parsePrometheus(await res.text());
    assert.ok(m.get('spillway_builds_total{type="b2g",location="onprem",result="failure"}')! >= 1);
    assert.ok(m.get('spillway_builds_total{type="linux64",location="cloud",result="success"}')! >= 1);
    assert.ok(m.get('spillway_dispatch_latency_seconds_count{type="b2g",location="onprem"}')! >= 2);
    assert.equal(m.get('spillway_queue_waiting{type="b2g"}'), 0);
    assert.equal(m.get('spillway_queue_oldest_wait_seconds{type="linux64"}'), 0);
    assert.equal(m.get('spillway_executors{location="cloud",state="free"}'), 1);
    assert.equal(m.get('spillway_cas_hits_total'), 1);
    assert.equal(m.get('spillway_cas_misses_total'), 1);
    assert.equal(m.get('spillway_cas_bytes_stored_total'), blob.length);
    assert.equal(m.get('spillway_cas_bytes_served_total'), blob.length);
    assert.ok(m.has('spillway_process_cpu_seconds_total'), 'process metrics under the same prefix');
    for (const key of m.keys()) assert.match(key, /^spillway_/);
  });
});

describe('metrics: instance events', () => {
  const record = (state: InstanceRecord['state']): InstanceRecord => ({
    id: 'i-1', pool: 'cloud', state, since: 0, version: 1, privateIp: null, spot: false, hibernated: false, agent: null, lastJobEndedAt: null, reason: null,
  });

  it('counts wakes, launches, suspensions and failures this master made; a pre-created record is not an event', async () => {
    const metrics = new MasterMetrics({ queues: async () => [], pools: async () => [], agents: () => [] });
    metrics.instanceChanged('cloud', record('suspended'), undefined);
    metrics.instanceChanged('cloud', record('waking'), 'suspended');
    metrics.instanceChanged('cloud', record('launching'), undefined);
    metrics.instanceChanged('cloud', record('suspended'), 'suspending');
    metrics.instanceChanged('cloud', record('failed'), 'booting');
    metrics.instanceChanged('cloud', record('idle'), 'booting');
    const m = parsePrometheus((await metrics.text()).body);
    assert.equal(m.get('spillway_instance_events_total{pool="cloud",event="wake"}'), 1);
    assert.equal(m.get('spillway_instance_events_total{pool="cloud",event="launch"}'), 1);
    assert.equal(m.get('spillway_instance_events_total{pool="cloud",event="suspend"}'), 1);
    assert.equal(m.get('spillway_instance_events_total{pool="cloud",event="failure"}'), 1);
  });
});
