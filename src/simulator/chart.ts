import type { SimulationResult } from './stats';

const W = 960;
const PANEL = 170;
const PAD = { left: 56, right: 56, top: 28, bottom: 26 };
const BACKLOG = '#2f6fb3';
const INSTANCES = '#d9822b';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A round step for an axis up to `max`. */
function niceMax(max: number): number {
  if (max <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

/**
 * One panel per policy: jobs waiting (left axis, blue) and cloud instances up (right axis,
 * orange step line), over the trace's time. Plain SVG, readable without a viewer script.
 */
export function renderChart(results: readonly SimulationResult[]): string {
  const start = Math.min(...results.map((r) => r.startedAt));
  const end = Math.max(...results.map((r) => r.endedAt), start + 1);
  const H = results.length * (PANEL + PAD.top + PAD.bottom) + 30;
  const x = (t: number) => PAD.left + ((t - start) / (end - start)) * (W - PAD.left - PAD.right);
  const hours = (end - start) / 3_600_000;
  const tickH = hours <= 6 ? 1 : hours <= 48 ? 6 : hours <= 24 * 8 ? 24 : 24 * 7;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${PAD.left}" y="16" font-size="13"><tspan fill="${BACKLOG}">&#9632; jobs waiting</tspan>  <tspan fill="${INSTANCES}">&#9632; cloud instances up</tspan></text>`,
  ];
  const maxBacklog = niceMax(Math.max(...results.flatMap((r) => r.samples.map((s) => s.backlog)), 1));
  const maxUp = niceMax(Math.max(...results.flatMap((r) => r.samples.map((s) => Object.values(s.awake).reduce((a, b) => a + b, 0))), 1));
  results.forEach((r, i) => {
    const top = 30 + i * (PANEL + PAD.top + PAD.bottom) + PAD.top;
    const y = (v: number, max: number) => top + PANEL - (v / max) * PANEL;
    parts.push(`<text x="${PAD.left}" y="${top - 8}" font-size="12" font-weight="bold">${esc(r.policy)}${r.spec ? ` <tspan font-weight="normal">(${esc(r.spec)})</tspan>` : ''}</text>`);
    parts.push(`<rect x="${PAD.left}" y="${top}" width="${W - PAD.left - PAD.right}" height="${PANEL}" fill="none" stroke="#ccc"/>`);
    for (let k = 0; k <= 4; k++) {
      const yy = top + PANEL - (k / 4) * PANEL;
      parts.push(`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${yy}" y2="${yy}" stroke="#eee"/>`);
      parts.push(`<text x="${PAD.left - 6}" y="${yy + 4}" text-anchor="end" fill="${BACKLOG}">${+((maxBacklog * k) / 4).toFixed(1)}</text>`);
      parts.push(`<text x="${W - PAD.right + 6}" y="${yy + 4}" fill="${INSTANCES}">${+((maxUp * k) / 4).toFixed(1)}</text>`);
    }
    for (let t = 0; t <= hours + 1e-9; t += tickH) {
      const xx = x(start + t * 3_600_000);
      parts.push(`<line x1="${xx}" x2="${xx}" y1="${top + PANEL}" y2="${top + PANEL + 4}" stroke="#999"/>`);
      parts.push(`<text x="${xx}" y="${top + PANEL + 16}" text-anchor="middle" fill="#555">${tickH >= 24 ? `day ${t / 24}` : `${t}h`}</text>`);
    }
    const backlog = r.samples.map((s) => `${x(s.at).toFixed(1)},${y(s.backlog, maxBacklog).toFixed(1)}`).join(' ');
    const up = r.samples
      .map((s, k) => {
        const v = y(Object.values(s.awake).reduce((a, b) => a + b, 0), maxUp).toFixed(1);
        const next = r.samples[k + 1];
        return `${x(s.at).toFixed(1)},${v} ${next ? `${x(next.at).toFixed(1)},${v}` : ''}`;
      })
      .join(' ');
    parts.push(`<polyline points="${backlog}" fill="none" stroke="${BACKLOG}" stroke-width="1.2"/>`);
    parts.push(`<polyline points="${up}" fill="none" stroke="${INSTANCES}" stroke-width="1.5"/>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
