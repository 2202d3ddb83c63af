// What the overview and the job page share: DOM building (text only, never HTML from data),
// formatting, the location badge and the token kept for this browser tab.
'use strict';

window.spillway = (() => {
  const TOKEN_KEY = 'spillway.adminToken';

  /** An element with attributes and children (strings become text nodes, never markup). */
  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  function dur(ms) {
    if (ms === null || ms === undefined) return '–';
    if (ms < 1000) return `${(ms / 1000).toFixed(1)} s`;
    const s = Math.round(ms / 1000);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} m ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} m`;
  }

  const pad = (n, w = 2) => String(n).padStart(w, '0');
  /** Local wall-clock time of day, with milliseconds when asked. */
  function clock(ms, withMs) {
    if (ms === null || ms === undefined) return '–';
    const d = new Date(ms);
    const t = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    return withMs ? `${t}.${pad(d.getMilliseconds(), 3)}` : t;
  }
  const iso = (ms) => (ms === null || ms === undefined ? '' : new Date(ms).toISOString());

  /** A long id cut to its start and end; the whole id is in the title (hover). */
  function shortId(id, max = 14) {
    const s = String(id);
    const text = s.length <= max ? s : `${s.slice(0, max - 5)}…${s.slice(-4)}`;
    return h('span', { class: 'id', title: s }, text);
  }

  function whereBadge(location, instanceId) {
    if (location === 'cloud') {
      const id = instanceId ? String(instanceId) : '';
      const short = id.length > 12 ? `${id.slice(0, 6)}…${id.slice(-4)}` : id;
      return h('span', { class: 'badge badge-cloud', 'data-location': 'cloud', title: id }, id ? `CLOUD · ${short}` : 'CLOUD');
    }
    return h('span', { class: 'badge badge-onprem', 'data-location': 'onprem' }, 'ON-PREM');
  }

  function jobHref(type, id) {
    return `/jobs/${encodeURIComponent(id)}?type=${encodeURIComponent(type)}`;
  }

  const token = {
    get: () => sessionStorage.getItem(TOKEN_KEY) || '',
    set: (v) => (v ? sessionStorage.setItem(TOKEN_KEY, v) : sessionStorage.removeItem(TOKEN_KEY)),
  };

  /** A request with the tab's token; resolves to the JSON body, or throws with the API's message. */
  async function send(method, url, body) {
    const headers = { authorization: `Bearer ${token.get()}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) {
      if (res.status === 401) token.set('');
      const err = new Error((json.error && json.error.message) || `HTTP ${res.status}`);
      err.status = res.status;
      throw err;
    }
    return json;
  }

  return { h, dur, clock, iso, shortId, whereBadge, jobHref, token, send };
})();
