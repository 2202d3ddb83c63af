// The spillway dashboard: one overview pushed by the master over server-sent events, rendered
// into plain DOM (text only, never HTML from data). No framework and no CDN on purpose.
'use strict';

(() => {
  const { h, dur, shortId, whereBadge, jobHref, token: tabToken, send } = window.spillway;
  const $ = (sel) => document.querySelector(sel);
  let overview = null;
  let historyAt;
  /** The builds of the previous render: a row not among them is new and is highlighted. */
  let shownBuilds = new Set();
  let firstRender = true;

  const hours = (h) => (h >= 10 ? h.toFixed(0) : h.toFixed(2));
  const money = (v) => (v === null || v === undefined ? '–' : `${v.toFixed(2)} ${overview.cost.currency}`);

  // ---- admin token and rule changes -------------------------------------------------------

  const token = tabToken.get;

  function showAdminState() {
    const editable = overview && overview.rulesEditable;
    $('#admin-state').textContent = !overview
      ? ''
      : !editable
        ? 'rule changes are off (no http.tokens.admin or no pools configured)'
        : token()
          ? 'unlocked: overflow rules can be changed'
          : 'read-only';
  }

  $('#admin').addEventListener('submit', (ev) => {
    ev.preventDefault();
    tabToken.set($('#admin-token').value.trim());
    $('#admin-token').value = '';
    showAdminState();
    renderQueues(true);
  });

  function say(text, error) {
    const m = $('#rule-message');
    m.textContent = text;
    m.className = error ? 'message error' : 'message';
  }

  async function putRule(type, patch) {
    return (await send('PUT', `/api/rules/${encodeURIComponent(type)}`, patch)).rule;
  }

  function describeRule(r) {
    return r ? `${r.enabled ? 'on' : 'off'} (pool ${r.pool}, backlog ≥ ${r.minBacklog}, oldest wait ≥ ${r.minOldestWaitSec} s)` : 'none';
  }

  /** The overflow cell: read-only text, or controls when unlocked. */
  function ruleCell(q) {
    const r = q.overflow;
    if (!r) return h('td', { 'data-rule': q.type }, h('span', { class: 'muted' }, 'on-prem only'));
    if (!overview.rulesEditable || !token()) {
      return h('td', { 'data-rule': q.type }, h('span', { 'data-testid': `overflow-${q.type}` }, describeRule(r)));
    }
    const enabled = h('input', { type: 'checkbox', 'data-testid': `overflow-toggle-${q.type}`, checked: r.enabled });
    const backlog = h('input', { type: 'number', min: 1, step: 1, value: r.minBacklog, 'aria-label': 'min backlog' });
    const wait = h('input', { type: 'number', min: 0, step: 1, value: r.minOldestWaitSec, 'aria-label': 'min oldest wait (s)' });
    const cell = h('td', { 'data-rule': q.type });
    const apply = async (patch) => {
      cell.dataset.busy = '1';
      try {
        const rule = await putRule(q.type, patch);
        q.overflow = rule;
        say(`${q.type}: overflow ${describeRule(rule)}`);
      } catch (err) {
        say(`${q.type}: ${err.message}`, true);
        showAdminState();
      } finally {
        delete cell.dataset.busy;
        delete cell.dataset.dirty;
        renderQueues(true);
      }
    };
    enabled.addEventListener('change', () => apply({ enabled: enabled.checked }));
    for (const input of [backlog, wait]) input.addEventListener('input', () => (cell.dataset.dirty = '1'));
    const save = h('button', { type: 'button', onclick: () => apply({ minBacklog: Number(backlog.value), minOldestWaitSec: Number(wait.value) }) }, 'save');
    cell.append(
      h('div', { class: 'rule' },
        h('label', {}, enabled, ' overflow'),
        h('label', {}, 'backlog ≥ ', backlog),
        h('label', {}, 'oldest wait ≥ ', wait, ' s'),
        save,
        h('span', { class: 'muted' }, `pool ${r.pool}`)),
    );
    return cell;
  }

  // ---- sections -----------------------------------------------------------------------------

  /** The farm at a glance: what waits, what runs where, the instances, today's cost. */
  function renderSummary() {
    const sum = (f) => overview.queues.reduce((n, q) => n + f(q), 0);
    const states = {};
    for (const p of overview.pools) for (const i of p.instances) states[i.state] = (states[i.state] || 0) + 1;
    const stateText = Object.keys(states).sort().map((s) => `${states[s]} ${s}`).join(', ') || 'none';
    const item = (label, value, testid) => h('span', { class: 'item', 'data-testid': testid }, h('span', { class: 'label' }, label), ' ', h('b', {}, value));
    $('#summary').replaceChildren(
      item('waiting', sum((q) => q.waiting + q.prioritized), 'summary-waiting'),
      item('running on-prem', sum((q) => q.runningOnprem), 'summary-onprem'),
      item('running cloud', sum((q) => q.runningCloud), 'summary-cloud'),
      item('instances', stateText, 'summary-instances'),
      item('agents', overview.agents.length, 'summary-agents'),
      item("today's cloud cost", money(overview.cost.today.totalCost), 'summary-cost'),
      ...cacheItems(item),
    );
  }

  /** The build cache's reads by tier since the master started and, with S3, how far the bucket lags. */
  function cacheItems(item) {
    const c = overview.cache;
    if (!c) return [];
    const r = c.reads;
    const served = (r.memory || 0) + r.disk + (r.s3 || 0);
    const all = served + r.missed;
    const tiers = [r.memory !== null && `memory ${r.memory}`, `disk ${r.disk}`, r.s3 !== null && `S3 ${r.s3}`, `missed ${r.missed}`].filter(Boolean).join(' · ');
    const items = [item('cache reads', all ? `${Math.round((served / all) * 100)}% hit (${tiers})` : 'none yet', 'summary-cache')];
    if (c.s3) {
      const errors = Object.entries(c.s3.errors).map(([code, n]) => `${code} ${n}`).join(', ');
      const lag = c.s3.queued ? `${c.s3.queued} waiting, oldest ${dur(c.s3.oldestAgeMs)}` : 'in sync';
      items.push(item('S3 uploads', lag + (c.s3.dropped ? `, ${c.s3.dropped} dropped` : ''), 'summary-s3'));
      if (errors || c.s3.corruptObjects) items.push(item('S3 errors', [errors, c.s3.corruptObjects && `${c.s3.corruptObjects} corrupt objects`].filter(Boolean).join(', '), 'summary-s3-errors'));
    }
    return items;
  }

  const queueRows = new Map();

  function renderQueues(force) {
    const body = $('#queues tbody');
    for (const q of overview.queues) {
      let row = queueRows.get(q.type);
      const cells = [
        h('td', { class: 'name' }, h('span', { title: q.type }, q.type), q.unrunnable && q.unrunnable.count
          ? h('div', { class: 'muted clip', title: q.unrunnable.reason || '', 'data-testid': `unrunnable-${q.type}` }, `${q.unrunnable.count} no agent can run: ${q.unrunnable.reason}`)
          : null),
        h('td', { class: 'num', 'data-testid': `waiting-${q.type}` }, q.waiting + q.prioritized),
        h('td', { class: 'num' }, q.oldestWaitMs === null ? '–' : dur(q.oldestWaitMs)),
        h('td', { class: 'num' }, q.runningOnprem),
        h('td', { class: 'num' }, q.runningCloud),
      ];
      if (!row) {
        row = h('tr', { 'data-queue': q.type });
        queueRows.set(q.type, row);
        body.append(row);
      }
      const old = row.querySelector('td[data-rule]');
      // Never replace the controls someone is typing into.
      const keep = old && !force && (old.dataset.dirty || old.dataset.busy || old.contains(document.activeElement));
      row.replaceChildren(...cells, keep ? old : ruleCell(q));
    }
    const select = $('#filter-type');
    const known = new Set([...select.options].map((o) => o.value));
    for (const q of overview.queues) if (!known.has(q.type)) select.append(h('option', { value: q.type }, q.type));
  }

  // The builds table: the newest builds live from the pushed overview (or, with a filter, the
  // first page of /api/builds read again on each push), then older pages on demand.
  const filters = () => ({ type: $('#filter-type').value, location: $('#filter-location').value, result: $('#filter-result').value });
  const filtered = () => Object.values(filters()).some(Boolean);
  const cursorOf = (b) => `${b.dispatchedAt}:${b.type}:${b.id}:${b.attempt}`;
  let head = [];
  let older = [];
  let olderDone = false;
  let headRequest = 0;

  async function fetchBuilds(before) {
    const q = new URLSearchParams({ limit: '50' });
    for (const [k, v] of Object.entries(filters())) if (v) q.set(k, v);
    if (before) q.set('before', before);
    const res = await fetch(`/api/builds?${q}`);
    const body = await res.json();
    if (!res.ok) throw new Error((body.error && body.error.message) || `HTTP ${res.status}`);
    return body;
  }

  async function refreshHead() {
    if (!filtered()) {
      head = overview.builds;
      renderBuilds();
      return;
    }
    const mine = ++headRequest;
    try {
      const page = await fetchBuilds();
      if (mine !== headRequest) return;
      head = page.builds;
      if (page.next === null && older.length === 0) olderDone = true;
      renderBuilds();
    } catch (err) {
      $('#builds-state').textContent = err.message;
    }
  }

  for (const sel of ['#filter-type', '#filter-location', '#filter-result']) {
    $(sel).addEventListener('change', () => {
      older = [];
      olderDone = false;
      head = [];
      renderBuilds();
      void refreshHead();
    });
  }

  $('#older').addEventListener('click', async () => {
    const shown = [...head, ...older];
    const last = shown[shown.length - 1];
    if (!last) return;
    $('#builds-state').textContent = 'loading…';
    try {
      const page = await fetchBuilds(cursorOf(last));
      older = older.concat(page.builds);
      olderDone = page.next === null;
      $('#builds-state').textContent = '';
      renderBuilds();
    } catch (err) {
      $('#builds-state').textContent = err.message;
    }
  });

  function renderBuilds() {
    const previous = shownBuilds;
    shownBuilds = new Set();
    const seen = new Set();
    const list = [...head, ...older].filter((b) => {
      const key = `${b.type}/${b.id}/${b.attempt}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
    const rows = list.map((b) => {
      const key = `${b.type}/${b.id}/${b.attempt}`;
      const fresh = !firstRender && !previous.has(key);
      shownBuilds.add(key);
      const running = b.state === 'running';
      const result = running ? 'running' : b.result;
      const duration = running ? (b.startedAt ? overview.at - b.startedAt : null) : b.durationMs;
      const page = jobHref(b.type, b.id);
      return h('tr', { class: fresh ? 'fresh' : '', 'data-build': key, 'data-job': b.id, 'data-location': b.location },
        h('td', { class: 'name' }, h('a', { href: page, 'data-testid': 'job-link' }, shortId(b.id)), b.attempt > 1 ? h('span', { class: 'muted' }, ` #${b.attempt}`) : null),
        h('td', { class: 'name' }, h('span', { title: b.type }, b.type)),
        h('td', { class: 'name clip', title: b.agent }, b.agent),
        h('td', {}, whereBadge(b.location, b.instanceId)),
        h('td', { class: 'num' }, dur(b.waitMs)),
        h('td', { class: 'num' }, dur(duration)),
        h('td', { class: `clip result-${result}`, 'data-result': result, title: b.reason || '' }, result, b.reason ? h('span', { class: 'muted' }, ` ${b.reason}`) : null),
        h('td', {}, h('a', { href: page }, running ? 'live log' : 'log')));
    });
    $('#builds tbody').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 8, class: 'muted' }, filtered() ? 'no builds match' : 'no builds yet'))]));
    $('#older').disabled = list.length === 0 || olderDone;
    if (olderDone && list.length) $('#builds-state').textContent = 'no older builds';
  }

  function renderPools() {
    const byInstance = new Map(overview.agents.filter((a) => a.instanceId).map((a) => [a.instanceId, a]));
    const blocks = overview.pools.map((p) => {
      const rows = p.instances.map((i) => {
        const agent = byInstance.get(i.id);
        const building = agent ? agent.running.map((r) => `${r.type}/${r.id}`).join(', ') : '';
        const details = [i.privateIp ? `address ${i.privateIp}` : null, i.reason ? `why: ${i.reason}` : null].filter(Boolean).join('\n');
        return h('tr', { 'data-instance': i.id, 'data-state': i.state, title: details },
          h('td', { class: 'name' }, shortId(i.id, 16), i.spot ? h('span', { class: 'muted' }, ' spot') : null),
          // Which kind of suspended: a stopped one wakes with a cold boot, a hibernated one resumes.
          h('td', { class: `state state-${i.state}`, title: i.state === 'suspended' ? (i.hibernated ? 'hibernated: resumes fast' : 'stopped: wakes with a cold boot') : i.state }, i.state, i.state === 'suspended' ? (i.hibernated ? ' (hibernated)' : ' (stopped)') : ''),
          h('td', { class: 'num' }, dur(overview.at - i.since)),
          h('td', { class: 'clip', title: building }, building || h('span', { class: 'muted' }, '–')),
          h('td', { class: 'muted clip', title: i.reason || '' }, i.reason || ''));
      });
      const decision = p.decision ? p.decision.reason : '';
      return h('div', { class: 'pool', 'data-pool': p.name },
        h('h3', {}, `${p.name} `, h('span', { class: 'muted' }, `${p.provider}, ${p.instances.length}/${p.maxInstances}`),
          p.setupError ? h('span', { class: 'result-failed' }, ` ${p.setupError}`) : null),
        decision ? h('div', { class: 'muted clip decision', title: decision }, decision) : null,
        h('table', {},
          h('thead', {}, h('tr', {}, ...['instance', 'state', 'since', 'building', 'why'].map((t) => h('th', {}, t)))),
          h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'no instances')))));
    });
    $('#pools').replaceChildren(...(blocks.length ? blocks : [h('p', { class: 'muted' }, 'no cloud pools configured')]));
  }

  function renderAgents() {
    const rows = overview.agents.map((a) => {
      const building = a.running.map((r) => `${r.type}/${r.id}`).join(', ');
      return h('tr', { 'data-agent': a.name, 'data-location': a.location },
        h('td', { class: 'name clip', title: a.name }, a.name, a.draining ? h('span', { class: 'muted' }, ' (draining)') : null,
          a.diskFull ? h('span', { class: 'result-failed', 'data-disk-full': '' }, ` (disk full: ${a.diskFull.freeMb} MiB free < ${a.diskFull.minFreeMb} MiB)`) : null),
        h('td', {}, whereBadge(a.location, a.instanceId)),
        h('td', { class: 'num' }, `${a.busy}/${a.executors}`),
        h('td', { class: 'clip', title: building }, building || h('span', { class: 'muted' }, 'idle')));
    });
    $('#agents tbody').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'no agents connected'))]));
  }

  function costTable(title, period) {
    const poolRows = period.pools.map((p) =>
      h('tr', { 'data-cost-pool': p.pool },
        h('td', {}, p.pool),
        h('td', { class: 'num' }, hours(p.onDemandHours)),
        h('td', { class: 'num' }, hours(p.spotHours)),
        h('td', { class: 'num' }, money(p.cost)),
        h('td', { class: 'num' }, hours(p.suspendedHours)),
        h('td', { class: 'num' }, money(p.savedCost))));
    const typeRows = period.types.map((t) =>
      h('tr', { 'data-cost-type': t.type }, h('td', {}, t.type), h('td', {}, t.pool), h('td', { class: 'num' }, hours(t.hours)), h('td', { class: 'num' }, money(t.cost))));
    return h('div', {},
      h('h3', {}, `${title} `, h('span', { class: 'muted' }, period.from === period.to ? period.from : `${period.from} – ${period.to} (UTC)`)),
      h('table', {},
        h('thead', {}, h('tr', {}, ...['pool', 'on-demand h', 'spot h', 'cost', 'suspended h (saved)', 'saved'].map((t) => h('th', {}, t)))),
        h('tbody', {}, poolRows.length ? poolRows : h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'no pools')))),
      h('p', {}, `total ${money(period.totalCost)}, saved by suspending ${money(period.savedCost)}`),
      h('table', {},
        h('thead', {}, h('tr', {}, ...['job type', 'pool', 'instance-hours used', 'cost'].map((t) => h('th', {}, t)))),
        h('tbody', {}, typeRows.length ? typeRows : h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'no cloud builds')))));
  }

  function renderCost() {
    $('#cost').replaceChildren(h('div', { class: 'cost' }, costTable('Today', overview.cost.today), costTable('This week', overview.cost.week)));
  }

  // ---- charts -------------------------------------------------------------------------------

  async function loadHistory() {
    const res = await fetch('/api/history?hours=24');
    if (!res.ok) return;
    const { samples, sampleMs } = await res.json();
    const { lines } = window.spillwayCharts;
    $('#history-span').textContent = samples.length ? `(last ${dur(overview.at - samples[0].at)}, ${samples.length} samples)` : '';
    const opts = (emptyText) => ({ gapMs: sampleMs * 1.5, emptyText: samples.length ? emptyText : undefined });
    const names = (pick) => [...new Set(samples.flatMap((s) => Object.keys(pick(s))))].sort();
    const backlogTypes = names((s) => s.backlog);
    lines($('#chart-backlog'), backlogTypes.map((t) => ({ name: t, points: samples.map((s) => [s.at, s.backlog[t] || 0]) })), (v) => v.toFixed(0), opts());
    const states = [...new Set(samples.flatMap((s) => Object.values(s.instances).flatMap((m) => Object.keys(m))))].sort();
    const count = (s, state) => Object.values(s.instances).reduce((n, m) => n + (m[state] || 0), 0);
    lines($('#chart-instances'), states.map((st) => ({ name: st, points: samples.map((s) => [s.at, count(s, st)]) })), (v) => v.toFixed(0), opts('no cloud instances'));
    const waitSeries = [];
    for (const where of ['onprem', 'cloud']) {
      for (const [p, dashed] of [['p50Ms', false], ['p90Ms', true]]) {
        // An interval in which no build started has no wait: a null point, so the line breaks there.
        waitSeries.push({ name: `${where === 'cloud' ? 'cloud' : 'on-prem'} ${p.slice(0, 3)}`, color: where === 'cloud' ? 1 : 0, dashed, points: samples.map((s) => [s.at, s.waits[where] ? s.waits[where][p] / 1000 : null]) });
      }
    }
    lines($('#chart-waits'), waitSeries, (v) => `${v.toFixed(v < 10 ? 1 : 0)} s`, opts('no builds started yet'));
  }

  // ---- live stream --------------------------------------------------------------------------

  function render(next) {
    overview = next;
    $('#master').textContent = `master ${next.masterId}`;
    showAdminState();
    renderSummary();
    renderQueues(false);
    void refreshHead();
    renderPools();
    renderAgents();
    renderCost();
    firstRender = false;
    if (next.historyAt !== historyAt) {
      historyAt = next.historyAt;
      loadHistory().catch(() => undefined);
    }
  }

  function connect() {
    const live = $('#live');
    const es = new EventSource('/api/events');
    es.addEventListener('overview', (ev) => render(JSON.parse(ev.data)));
    es.onopen = () => {
      live.textContent = 'live';
      live.className = 'live on';
    };
    // EventSource reconnects by itself; say so meanwhile.
    es.onerror = () => {
      live.textContent = 'reconnecting…';
      live.className = 'live off';
    };
  }

  connect();
})();
