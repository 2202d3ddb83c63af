import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { historyQuery } from './api-schemas';
import type { Dashboard } from './dashboard';

/** The page's files, served from memory: the dashboard works with no internet (no CDN). */
const ASSETS: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'log.html': 'text/html; charset=utf-8',
  'job.html': 'text/html; charset=utf-8',
  'common.js': 'text/javascript; charset=utf-8',
  'job.js': 'text/javascript; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'log.js': 'text/javascript; charset=utf-8',
  'charts.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

/** The assets live beside the sources; compiled code runs from dist/src/http. */
function assetsDir(): string {
  const candidates = [join(__dirname, 'dashboard-assets'), join(__dirname, '..', '..', '..', 'src', 'http', 'dashboard-assets')];
  const found = candidates.find((d) => existsSync(join(d, 'index.html')));
  if (!found) throw new Error(`dashboard assets not found in ${candidates.join(' or ')}`);
  return found;
}


/** `GET /` (the page), its assets, the JSON behind it, the live stream and `/metrics`. */
export function registerDashboardRoutes(app: FastifyInstance, dashboard: Dashboard, now: () => number): void {
  const dir = assetsDir();
  const files = new Map(Object.entries(ASSETS).map(([name, type]) => [name, { type, body: readFileSync(join(dir, name)) }]));
  const send = (name: string) => {
    const f = files.get(name)!;
    return (_req: unknown, reply: import('fastify').FastifyReply) => reply.type(f.type).header('cache-control', 'no-cache').send(f.body);
  };

  app.get('/', send('index.html'));
  app.get('/log', send('log.html'));
  // The id is read by the page from its own URL (as text), never put into the HTML.
  app.get('/jobs/:id', send('job.html'));
  app.get<{ Params: { file: string } }>('/assets/:file', async (req, reply) => {
    const f = files.get(req.params.file);
    if (!f || req.params.file.endsWith('.html')) {
      return reply.status(404).send({ error: { code: 'SPILLWAY_E_NOT_FOUND', message: `no asset ${req.params.file}` } });
    }
    return reply.type(f.type).header('cache-control', 'no-cache').send(f.body);
  });

  app.get('/api/overview', () => dashboard.overview());
  app.get('/api/cost', () => dashboard.cost());
  app.get('/api/history', async (req, reply) => {
    const q = historyQuery.safeParse(req.query);
    if (!q.success) return reply.status(400).send({ error: { code: 'SPILLWAY_E_BAD_REQUEST', message: q.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') } });
    // The interval lets the charts tell a gap (no samples: the master was down) from a flat line.
    return { samples: await dashboard.history.since(now() - q.data.hours * 3600 * 1000), sampleMs: dashboard.sampleMs };
  });
  app.get('/api/events', (_req, reply) => {
    reply.hijack();
    dashboard.live.attach(reply.raw);
  });
  app.get('/metrics', async (_req, reply) => {
    const { body, contentType } = await dashboard.metrics.text();
    return reply.type(contentType).send(body);
  });
}
