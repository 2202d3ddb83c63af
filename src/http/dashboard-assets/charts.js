// Small SVG line charts for the dashboard: no chart library, so the page needs no internet.
'use strict';

window.spillwayCharts = (() => {
  const NS = 'http://www.w3.org/2000/svg';
  const COLORS = ['#1f5fa8', '#b35c00', '#1e7b34', '#8e3fb0', '#b3261e', '#00838f', '#6d4c41', '#5c6bc0', '#c0a000', '#455a64'];

  function el(tag, attrs) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  /** A series may pick its colour (`color`: an index), e.g. p50 and p90 of one place alike. */
  const colorOf = (s, i) => COLORS[(s.color ?? i) % COLORS.length];

  function clock(ms) {
    const d = new Date(ms);
    return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
  }

  /** Points split where a value is missing (null) or samples are further apart than `gapMs`. */
  function runs(points, gapMs) {
    const out = [];
    let run = [];
    let prevT = null;
    for (const [t, v] of points) {
      const gap = gapMs && prevT !== null && t - prevT > gapMs;
      if (v === null || v === undefined || gap) {
        if (run.length) out.push(run);
        run = [];
      }
      if (v !== null && v !== undefined) run.push([t, v]);
      prevT = t;
    }
    if (run.length) out.push(run);
    return out;
  }

  /** The legend's sample of a series: its colour and, for a dashed one, its dashes. */
  function swatch(s, i) {
    const svg = el('svg', { width: 22, height: 8, class: 'swatch', 'aria-hidden': 'true' });
    svg.append(el('line', { x1: 1, x2: 21, y1: 4, y2: 4, stroke: colorOf(s, i), 'stroke-width': 2, 'stroke-dasharray': s.dashed ? '4 3' : 'none' }));
    return svg;
  }

  /**
   * Draws `series` ([{ name, points: [[t, v | null], ...], dashed?, color? }]) into `container`,
   * replacing what was there. `format` turns a y value into an axis label. A line is never drawn
   * across a gap: a null value, or two samples further apart than `opts.gapMs`. With no value
   * at all the chart says so (`opts.emptyText`, else "no samples yet").
   */
  function lines(container, series, format, opts = {}) {
    const W = 420, H = 150, L = 44, R = 8, T = 8, B = 20;
    container.replaceChildren();
    const all = series.flatMap((s) => s.points.filter((p) => p[1] !== null && p[1] !== undefined));
    if (all.length === 0) {
      const p = document.createElement('p');
      p.className = 'muted empty';
      p.textContent = opts.emptyText || 'no samples yet';
      container.append(p);
      return;
    }
    const times = series.flatMap((s) => s.points.map((p) => p[0]));
    const t0 = Math.min(...times);
    const t1 = Math.max(...times, t0 + 1);
    // At least 2, so a chart of zeros and ones still gets distinct axis labels.
    const yMax = Math.max(2, ...all.map((p) => p[1]));
    const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const y = (v) => T + (1 - v / yMax) * (H - T - B);
    const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img' });
    for (const frac of [0, 0.5, 1]) {
      const v = yMax * frac;
      svg.append(el('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#e5e5e0' }));
      const label = el('text', { x: L - 4, y: y(v) + 3, 'text-anchor': 'end' });
      label.textContent = format(v);
      svg.append(label);
    }
    for (const [t, anchor] of [[t0, 'start'], [t1, 'end']]) {
      const label = el('text', { x: x(t), y: H - 5, 'text-anchor': anchor });
      label.textContent = clock(t);
      svg.append(label);
    }
    series.forEach((s, i) => {
      const parts = runs(s.points, opts.gapMs);
      if (parts.length === 0) return;
      // One path per series (one "M" per run), so a gap is a real break in the line.
      const d = parts.map((run) => run.map((p, j) => `${j ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join('')).join('');
      const path = el('path', { d, fill: 'none', stroke: colorOf(s, i), 'stroke-width': 1.6, 'stroke-dasharray': s.dashed ? '4 3' : 'none' });
      path.setAttribute('data-series', s.name);
      path.setAttribute('data-runs', String(parts.length));
      svg.append(path);
      // A run of one sample would be invisible as a line: a dot.
      for (const run of parts) {
        if (run.length === 1) svg.append(el('circle', { cx: x(run[0][0]), cy: y(run[0][1]), r: 2, fill: colorOf(s, i), 'data-series': s.name }));
      }
    });
    const legend = document.createElement('div');
    legend.className = 'legend';
    series.forEach((s, i) => {
      const item = document.createElement('span');
      item.setAttribute('data-legend', s.name);
      item.append(swatch(s, i), document.createTextNode(s.name));
      legend.append(item);
    });
    container.append(svg, legend);
  }

  return { lines };
})();
