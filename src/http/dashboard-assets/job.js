// The job page (/jobs/:id): the job, every attempt, its log followed live with a time per
// line, and cancel / retry once a token is entered. Everything from the API is text.
'use strict';

(() => {
  const { h, dur, clock, iso, shortId, whereBadge, jobHref, token, send } = window.spillway;
  const $ = (sel) => document.querySelector(sel);
  const id = decodeURIComponent(location.pathname.replace(/^\/jobs\//, ''));
  const type = new URLSearchParams(location.search).get('type');
  const typeQuery = type ? `?type=${encodeURIComponent(type)}` : '';
  const api = `/api/jobs/${encodeURIComponent(id)}`;
  let view = null;

  $('#title').textContent = `job ${id}`;
  document.title = `spillway job ${id}`;
  $('#raw').setAttribute('href', `${api}/log.txt${typeQuery}`);

  /** Why an attempt ended, in words a release engineer uses. */
  const RESULT_WORDS = {
    success: 'succeeded',
    failure: 'failed',
    timeout: 'timed out',
    signal: 'killed by a signal',
    oom: 'out of memory',
    disk: 'disk full',
    error: 'could not start',
    lost: 'agent lost',
    cancelled: 'cancelled',
    preempted: 'preempted (spot interruption, requeued)',
  };

  function attemptReason(b) {
    if (b.state === 'running') return '';
    const words = RESULT_WORDS[b.result] || b.result || '';
    const extra = [b.signal ? `signal ${b.signal}` : null, b.reason === words ? null : b.reason].filter(Boolean).join(', ');
    return extra ? `${words}: ${extra}` : words;
  }

  const lastBuild = () => (view && view.builds.length ? view.builds[view.builds.length - 1] : null);
  const cancelled = () => Boolean(view && (view.cancelledBy || (lastBuild() && lastBuild().result === 'cancelled')));
  const shownState = () => (cancelled() ? 'cancelled' : lastBuild() && lastBuild().state === 'running' && !view.done ? 'running' : view.state);

  // ---- token and controls ---------------------------------------------------------------------

  function showControls() {
    const has = Boolean(token.get());
    $('#admin-state').textContent = has ? 'unlocked: cancel and retry' : 'read-only';
    $('#cancel').hidden = !(has && view && !view.done && !cancelled());
    $('#retry').hidden = !(has && view && (view.done || cancelled()));
  }

  function say(text, error) {
    const m = $('#job-message');
    m.textContent = text;
    m.className = error ? 'message error' : 'message';
  }

  $('#admin').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token.set($('#admin-token').value.trim());
    $('#admin-token').value = '';
    showControls();
  });

  $('#cancel').addEventListener('click', async () => {
    try {
      const r = await send('POST', `${api}/cancel${typeQuery}`, { reason: 'from the job page' });
      say(r.state === 'cancelled' ? `cancelled by ${r.by} (was ${r.was})` : `cancel sent to its agent by ${r.by} (was ${r.was})`);
    } catch (err) {
      say(`cancel: ${err.message}`, true);
    }
    showControls();
    void loadView();
  });

  $('#retry').addEventListener('click', async () => {
    try {
      const r = await send('POST', `${api}/retry${typeQuery}`);
      say(r.created ? 'retried as ' : 'retried before as ');
      $('#job-message').append(h('a', { href: jobHref(view.type, r.id), 'data-testid': 'retried-as' }, r.id));
    } catch (err) {
      say(`retry: ${err.message}`, true);
    }
    showControls();
  });

  // ---- the job and its attempts ---------------------------------------------------------------

  function field(label, ...value) {
    return h('div', { class: 'field' }, h('span', { class: 'label' }, label), h('span', { class: 'value' }, ...value));
  }

  function renderView() {
    const b = lastBuild();
    const state = shownState();
    const reasons = [];
    if (view.unrunnable) reasons.push(`no agent can run it: ${view.unrunnable}`);
    if (b && b.state === 'finished' && b.result !== 'success') reasons.push(attemptReason(b));
    if (view.failedReason && !reasons.some((r) => r.includes(view.failedReason))) reasons.push(view.failedReason);
    if (view.cancelReason) reasons.push(`cancel reason: ${view.cancelReason}`);
    const wait = b && b.waitMs !== null ? b.waitMs : view.done ? null : Date.now() - view.queuedAt;
    const duration = b ? (b.state === 'running' && b.startedAt ? Date.now() - b.startedAt : b.durationMs) : null;
    const fields = [
      field('type', view.type),
      field('state', h('span', { class: `result-${state}`, 'data-testid': 'job-state', 'data-state': state }, state)),
      field('attempts', `${view.builds.length} run · ${view.attemptsMade}/${view.attempts} used`),
      view.priority !== undefined && view.priority !== null ? field('priority', view.priority) : null,
      field('where', b ? whereBadge(b.location, b.instanceId) : h('span', { class: 'muted' }, 'not started')),
      field('queued', h('span', { title: iso(view.queuedAt) }, clock(view.queuedAt))),
      field('started', h('span', { title: iso(view.startedAt) }, clock(view.startedAt))),
      field('finished', h('span', { title: iso(view.finishedAt) }, clock(view.finishedAt))),
      field('wait', dur(wait)),
      field('duration', dur(duration)),
      field('exit code', h('span', { 'data-testid': 'job-exit' }, view.exitCode === null ? '–' : view.exitCode)),
      field('reason', h('span', { 'data-testid': 'job-reason' }, reasons.join('; ') || '–')),
      view.cancelledBy ? field('cancelled by', view.cancelledBy) : null,
      view.retryOf ? field('retry of', h('a', { href: jobHref(view.type, view.retryOf) }, shortId(view.retryOf))) : null,
      view.retriedAs ? field('retried as', h('a', { href: jobHref(view.type, view.retriedAs) }, shortId(view.retriedAs))) : null,
    ];
    $('#summary').replaceChildren(...fields.filter(Boolean));
    const rows = view.builds.map((a) =>
      h('tr', { 'data-attempt': a.attempt, 'data-location': a.location },
        h('td', { class: 'num' }, a.attempt),
        h('td', {}, a.agent),
        h('td', {}, whereBadge(a.location, a.instanceId)),
        h('td', {}, a.instanceId ? shortId(a.instanceId) : '–'),
        h('td', { title: iso(a.queuedAt) }, clock(a.queuedAt)),
        h('td', { title: iso(a.startedAt) }, clock(a.startedAt)),
        h('td', { title: iso(a.finishedAt) }, clock(a.finishedAt)),
        h('td', { class: 'num' }, dur(a.waitMs)),
        h('td', { class: 'num' }, dur(a.state === 'running' && a.startedAt ? Date.now() - a.startedAt : a.durationMs)),
        h('td', { class: `result-${a.state === 'running' ? 'running' : a.result}`, 'data-result': a.state === 'running' ? 'running' : a.result }, a.state === 'running' ? 'running' : a.result),
        h('td', { class: 'num' }, a.exitCode === null ? '–' : a.exitCode),
        h('td', { class: 'muted' }, attemptReason(a)),
        // Every attempt's own log, raw (the page follows the latest one's).
        h('td', {}, h('a', { href: `${api}/log.txt?${new URLSearchParams({ ...(type ? { type } : {}), attempt: String(a.attempt) })}`, 'data-testid': `attempt-log-${a.attempt}` }, 'log.txt'))));
    $('#attempts tbody').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 13, class: 'muted' }, view.unrunnable ? `waiting: no agent can run it (${view.unrunnable})` : 'waiting for an agent'))]));
    showControls();
  }

  let loading = null;
  async function loadView() {
    if (loading) return loading;
    loading = (async () => {
      try {
        const res = await fetch(`${api}${typeQuery ? `${typeQuery}&` : '?'}log=0`);
        const body = await res.json();
        if (!res.ok) {
          say((body.error && body.error.message) || `HTTP ${res.status}`, true);
          return;
        }
        view = body;
        renderView();
      } finally {
        loading = null;
      }
    })();
    return loading;
  }

  // ---- the log, a time per line ---------------------------------------------------------------

  const encoder = new TextEncoder();
  const logBox = $('#log');
  let marks = []; // [byte offset, ms], ascending, of the attempt shown
  let lineStart = 0; // byte offset of the line being received
  let partial = ''; // its text so far
  let partialRow = null;

  function timeAt(offset) {
    let at = null;
    for (const [o, t] of marks) {
      if (o > offset) break;
      at = t;
    }
    return at;
  }

  function lineRow(text, at) {
    return h('div', { class: 'line', 'data-at': at === null ? '' : at },
      h('span', { class: 'ts', title: iso(at) }, at === null ? '' : clock(at, true)),
      h('span', { class: 'text' }, text));
  }

  function addMarks(more) {
    for (const m of more) if (!marks.length || m[0] > marks[marks.length - 1][0]) marks.push(m);
  }

  function append(data) {
    const parts = (partial + data).split('\n');
    partial = parts.pop();
    if (partialRow) partialRow.remove();
    partialRow = null;
    const rows = parts.map((text) => {
      const row = lineRow(text, timeAt(lineStart));
      lineStart += encoder.encode(text).length + 1;
      return row;
    });
    if (partial) rows.push((partialRow = lineRow(partial, timeAt(lineStart))));
    logBox.append(...rows);
  }

  async function followLog() {
    let attempt = 0;
    let offset = 0;
    for (;;) {
      const q = new URLSearchParams({ attempt: String(attempt), offset: String(offset), waitMs: '20000' });
      if (type) q.set('type', type);
      let chunk;
      try {
        const res = await fetch(`${api}/log?${q}`);
        chunk = await res.json();
        if (!res.ok) {
          $('#log-state').textContent = (chunk.error && chunk.error.message) || `HTTP ${res.status}`;
          return;
        }
      } catch {
        $('#log-state').textContent = 'connection lost, retrying…';
        await new Promise((r) => setTimeout(r, 2000));
        continue;
      }
      if (chunk.attempt !== attempt) {
        // A new attempt: its log replaces the previous one's (which the attempts table lists).
        logBox.replaceChildren();
        marks = [];
        lineStart = 0;
        partial = '';
        partialRow = null;
        attempt = chunk.attempt;
        void loadView();
      }
      addMarks(chunk.marks || []);
      if (chunk.data) append(chunk.data);
      offset = chunk.nextOffset;
      $('#log-state').textContent = attempt ? `(attempt ${attempt}, ${chunk.done ? 'stored' : 'live'})` : '(no output yet)';
      if (chunk.done) {
        void loadView();
        if (!chunk.data) return;
      }
    }
  }

  // The page follows the farm's live updates: each push (a build started or ended, a job
  // settled) may concern this job, so it is read again while it is not done.
  function connect() {
    const live = $('#live');
    const es = new EventSource('/api/events');
    // A job can be done (cancelled) a moment before its agent's report closes the attempt's record.
    es.addEventListener('overview', () => {
      if (!view || !view.done || view.builds.some((b) => b.state === 'running')) void loadView();
    });
    es.onopen = () => {
      live.textContent = 'live';
      live.className = 'live on';
    };
    es.onerror = () => {
      live.textContent = 'reconnecting…';
      live.className = 'live off';
    };
  }

  showControls();
  void loadView().then(() => {
    connect();
    void followLog();
  });
})();
