// A build's log, followed live: long-polls /api/jobs/:id/log until the job is done.
'use strict';

(async () => {
  const params = new URLSearchParams(location.search);
  const id = params.get('id');
  const type = params.get('type');
  const pre = document.getElementById('log');
  const state = document.getElementById('state');
  document.getElementById('title').textContent = `${type || ''} ${id || ''}`;
  if (!id) {
    state.textContent = 'no job id given';
    return;
  }
  let attempt = 0;
  let offset = 0;
  for (;;) {
    const q = new URLSearchParams({ attempt: String(attempt), offset: String(offset), waitMs: '20000' });
    if (type) q.set('type', type);
    let chunk;
    try {
      const res = await fetch(`/api/jobs/${encodeURIComponent(id)}/log?${q}`);
      chunk = await res.json();
      if (!res.ok) {
        state.textContent = (chunk.error && chunk.error.message) || `HTTP ${res.status}`;
        return;
      }
    } catch {
      state.textContent = 'connection lost, retrying…';
      await new Promise((r) => setTimeout(r, 2000));
      continue;
    }
    if (chunk.attempt !== attempt) {
      // A retry started: show the new attempt's log from its beginning.
      if (attempt !== 0) pre.append(document.createTextNode(`\n--- attempt ${chunk.attempt} ---\n`));
      attempt = chunk.attempt;
    }
    pre.append(document.createTextNode(chunk.data));
    offset = chunk.nextOffset;
    state.textContent = `attempt ${attempt} · ${chunk.state}`;
    if (chunk.done && !chunk.data) return;
    if (chunk.done) continue; // read once more: the rest may have arrived with the end
  }
})();
