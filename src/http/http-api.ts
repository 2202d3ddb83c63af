import Fastify, { type FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Config } from '../config';
import { guardRoutes, HttpRoles, RedisUnavailableError, RefusalLog, RepeatLog, SpillwayError, type Clock, type Logger, type RedisProbe } from '../lib';
import { cacheRouteHint, casRoutes, type CasHotPath, type CasRoutesOptions } from '../cas';
import { CANCEL_WAIT_MS, type BuildHistory, type JobApi, type JobControlApi, type MasterView } from '../master';
import type { Provisioner, RuleBook } from '../provisioner';
import type { Dashboard } from './dashboard';
import { registerDashboardRoutes } from './dashboard-routes';
import { redisDeadline } from './redis-deadline';
import { buildsQuery, cancelBody, jobQuery, logQuery, logTextQuery, longPoll, typeQuery } from './api-schemas';
import { openApiDocument, type RegisteredRoute } from './openapi';
import { agentsView, queuesView } from './views';

export interface HttpApiDeps {
  config: Config;
  jobs: JobApi;
  /** Cancel and retry. */
  control: JobControlApi;
  builds: BuildHistory;
  master: MasterView;
  /** Asks Redis whether it answers, for /healthz and for telling a Redis outage from a bug. */
  redisProbe: Pick<RedisProbe, 'check'>;
  clock: Clock;
  log: Logger;
  /** Present when the config has pools. */
  autoscale?: { provisioner: Provisioner; rules: RuleBook };
  /** Present when the config has a CAS dir. */
  cas?: { routes: CasRoutesOptions; hotPath?: CasHotPath };
  dashboard: Dashboard;
}

const STATUS: Record<string, number> = {
  SPILLWAY_E_BAD_REQUEST: 400,
  SPILLWAY_E_NOT_FOUND: 404,
  SPILLWAY_E_CONFLICT: 409,
  SPILLWAY_E_JOB_FINISHED: 409,
  SPILLWAY_E_JOB_NOT_FINISHED: 409,
  SPILLWAY_E_REDIS_UNAVAILABLE: 503,
};

/** Routes with no deadline: the live stream stays open by design; the page and its files never touch Redis; /healthz bounds itself. */
const NO_DEADLINE = new Set(['/api/events', '/healthz', '/', '/log', '/jobs/:id', '/assets/:file']);

/** A job id as a download's file name: ids from the API are safe already, raw BullMQ ids may not be. */
const fileNameOf = (id: string) => id.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_');

function parseQuery<T>(schema: z.ZodType<T>, q: unknown): T {
  const r = schema.safeParse(q);
  if (r.success) return r.data;
  const err = new Error(r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')) as Error & { statusCode: number; code: string };
  err.statusCode = 400;
  err.code = 'SPILLWAY_E_BAD_REQUEST';
  throw err;
}

/** The master's HTTP API: jobs, builds, queues, agents. Errors are `{ error: { code, message } }`. */
export function createHttpApi(d: HttpApiDeps): FastifyInstance {
  const hot = d.cas?.hotPath;
  const app = Fastify({ logger: false, bodyLimit: d.config.http.bodyLimitBytes, ...(hot && { serverFactory: hot.serverFactory() }) });
  const outages = new RepeatLog(d.log, d.clock, d.config.log.repeatWindowSec * 1000);

  app.setErrorHandler(async (err, req, reply) => {
    let e = err as Error & { statusCode?: number; code?: string };
    if (!(e instanceof SpillwayError) && (e.statusCode ?? 500) >= 500) {
      // A command failed: if Redis does not answer, that is the cause the caller should hear.
      const health = await d.redisProbe.check();
      if (!health.ok) e = new RedisUnavailableError(`Redis unavailable: ${health.reason}`, { cause: e });
    }
    const status = e instanceof SpillwayError ? (STATUS[e.code] ?? 500) : (e.statusCode ?? 500);
    const code = e instanceof SpillwayError ? e.code : status < 500 ? 'SPILLWAY_E_BAD_REQUEST' : 'SPILLWAY_E_INTERNAL';
    const url = req.routeOptions.url ?? req.url.split('?')[0]!;
    if (e instanceof RedisUnavailableError) outages.warn('http.redis-unavailable', `${url} ${e.message}`, { url, reason: e.message });
    else if (status >= 500) d.log.error('http.error', { error: e, url: req.url });
    return reply.status(status).send({ error: { code, message: e.message } });
  });
  const routeHints = new RepeatLog(d.log, d.clock, d.config.log.repeatWindowSec * 1000);
  const mount = { enabled: d.cas !== undefined, prefix: d.cas?.routes.prefix ?? '' };
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!;
    const hint = cacheRouteHint(path, mount);
    // One kind for every path: a misconfigured client sends thousands of these, one line says it.
    if (hint !== undefined) routeHints.warn('cas.route-hint', 'route-miss', { method: req.method, path, hint });
    void reply.status(404).send({ error: { code: 'SPILLWAY_E_NOT_FOUND', message: `no route ${req.method} ${req.url}` } });
  });

  // The API's own routes live in one context whose hook puts the role check (README: "Who
  // can do what") in front of every route. The CAS routes sit outside: cache clients
  // authenticate with the cas tokens instead.
  const refusals = new RefusalLog(d.log, d.clock);
  // Every route as registered (method, url, its access): what /api/openapi.json describes.
  const registered: RegisteredRoute[] = [];
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) registered.push({ method, url: r.url, access: r.config?.access });
  });
  void app.register(async (api) => {
    redisDeadline(api, {
      timeoutMs: d.config.http.redisTimeoutMs,
      probe: d.redisProbe,
      clock: d.clock,
      exempt: (url) => NO_DEADLINE.has(url),
      extraMs: (url, query) => (url === '/api/jobs/:id/log' ? longPoll.parse(query ?? {}).waitMs : url === '/api/jobs/:id/cancel' ? CANCEL_WAIT_MS : 0),
    });
    const roles = new HttpRoles(d.config.http.tokens);
    guardRoutes(api, roles, (req, need, reason) =>
      refusals.warn('http.access-refused', req.ip, { method: req.method, url: req.url.split('?')[0], need, reason }),
    );

    api.post('/api/jobs', { config: { access: 'submit' } }, async (req, reply) => {
      // 200 for a job id submitted before: the job it made, not a second build.
      const job = await d.jobs.submit(req.body);
      return reply.status(job.created ? 201 : 200).send({ ...job, url: `/api/jobs/${job.id}` });
    });

    api.get<{ Params: { id: string } }>('/api/jobs/:id', async (req) => {
      const q = parseQuery(jobQuery, req.query);
      return d.jobs.view(req.params.id, q.type, q.log !== '0');
    });

    api.get<{ Params: { id: string } }>('/api/jobs/:id/log', async (req) => {
      const q = parseQuery(logQuery, req.query);
      return d.jobs.logChunk(req.params.id, q.type, q.attempt, q.offset, q.waitMs);
    });

    api.get<{ Params: { id: string } }>('/api/jobs/:id/log.txt', async (req, reply) => {
      const q = parseQuery(logTextQuery, req.query);
      const log = await d.jobs.logText(req.params.id, q.type, q.attempt);
      return reply
        .type('text/plain; charset=utf-8')
        .header('content-disposition', `attachment; filename=${fileNameOf(log.id)}.log`)
        .header('x-spillway-attempt', String(log.attempt))
        .send(log.text);
    });

    // 200 once the job failed as cancelled; 202 while its master has not confirmed it yet.
    api.post<{ Params: { id: string } }>('/api/jobs/:id/cancel', { config: { access: 'submit' } }, async (req, reply) => {
      const q = parseQuery(typeQuery, req.query);
      const body = parseQuery(cancelBody, req.body ?? {});
      const done = await d.control.cancel(req.params.id, q.type, roles.caller(req.headers.authorization), body.reason || null);
      return reply.status(done.state === 'cancelled' ? 200 : 202).send(done);
    });

    // 201 for the new job; 200 with the retry made before, for a job retried already.
    api.post<{ Params: { id: string } }>('/api/jobs/:id/retry', { config: { access: 'submit' } }, async (req, reply) => {
      const q = parseQuery(typeQuery, req.query);
      const job = await d.control.retry(req.params.id, q.type);
      return reply.status(job.created ? 201 : 200).send(job);
    });

    api.get('/api/builds', async (req) => {
      const q = parseQuery(buildsQuery, req.query);
      const filter = { ...(q.type !== undefined && { type: q.type }), ...(q.location && { location: q.location }), ...(q.result && { result: q.result }) };
      return d.builds.page(q.limit, q.before, filter, q.offset);
    });

    api.get('/api/queues', async () => ({ queues: await queuesView(d.master, d.clock.now()) }));

    api.get('/api/agents', async () => ({ agents: agentsView(d.master) }));

    // Load balancers and supervisors probe it without a token: each part's state, no details
    // beyond a failing part's reason. Redis is asked afresh every time (PING, bounded).
    api.get('/healthz', { config: { access: 'open' } }, async (_req, reply) => {
      const [redis, agents] = [await d.redisProbe.check(), d.master.agentListener()];
      const ok = redis.ok && agents.ok;
      return reply.status(ok ? 200 : 503).send({ ok, redis: redis.ok ? 'ok' : redis.reason, agentListener: agents.ok ? 'ok' : agents.detail });
    });

    registerDashboardRoutes(api, d.dashboard, () => d.clock.now());

    // Built once, on first request: every route is registered by then.
    let openapi: object | undefined;
    api.get('/api/openapi.json', async () => (openapi ??= openApiDocument(registered)));

    api.get('/api/pools', async () => ({ pools: d.autoscale ? await d.autoscale.provisioner.report() : [] }));

    api.get('/api/rules', async () => ({ rules: d.autoscale ? await d.autoscale.rules.rules() : {} }));

    api.put<{ Params: { type: string } }>('/api/rules/:type', async (req, reply) => {
      // Own keys only: `toString` or `__proto__` would otherwise pass as job types (and be stored).
      if (!Object.hasOwn(d.config.jobTypes, req.params.type)) {
        return reply.status(404).send({ error: { code: 'SPILLWAY_E_NOT_FOUND', message: `unknown job type "${req.params.type}"` } });
      }
      if (!d.autoscale) return reply.status(409).send({ error: { code: 'SPILLWAY_E_BAD_REQUEST', message: 'no pools are configured' } });
      const change = await d.autoscale.rules.update(req.params.type, req.body, new Set(Object.keys(d.config.pools)));
      if (!change.ok) return reply.status(400).send({ error: { code: 'SPILLWAY_E_BAD_REQUEST', message: change.problems.join('; ') } });
      d.log.info('rules.changed', { type: req.params.type, rule: change.rule });
      d.autoscale.provisioner.kick();
      d.dashboard.live.changed();
      return { type: req.params.type, rule: change.rule };
    });
  });
  if (d.cas) void app.register(casRoutes, d.cas.routes);

  return app;
}
