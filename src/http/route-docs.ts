import { z } from 'zod';
import { overflowSchema } from '../config';
import { submitOptionsSchema } from '../master';
import { jobPayloadSchema } from '../protocol';
import { buildsQuery, cancelBody, historyQuery, jobQuery, logQuery, logTextQuery, typeQuery } from './api-schemas';

/** What the OpenAPI document says of one route; who may call it comes from the route itself. */
export interface RouteDoc {
  summary: string;
  description?: string;
  /** The schema the route validates its query string with. */
  query?: z.ZodType;
  /** The schemas the route validates its JSON body with (all of them apply). */
  body?: readonly z.ZodType[];
  /** Status code -> what it means. */
  responses: Readonly<Record<number, string>>;
  /** @defaultValue 'application/json' */
  produces?: string;
}

const errors = { 400: 'bad request: `{ error: { code, message } }` naming every problem', 503: 'Redis unavailable (`SPILLWAY_E_REDIS_UNAVAILABLE`)' };

/**
 * Every HTTP route's description, keyed `METHOD /url` exactly as it is registered (fastify's
 * `:param` syntax). A route added without an entry here is missing from /api/openapi.json,
 * which test/http/openapi.redis.test.ts catches.
 */
export const ROUTE_DOCS: Readonly<Record<string, RouteDoc>> = {
  'POST /api/jobs': {
    summary: 'Submit a build',
    description: 'Exactly one of `argv` or `shell`. A `jobId` submitted before with the same payload answers 200 with that job instead of a second build.',
    body: [jobPayloadSchema, submitOptionsSchema],
    responses: { 201: 'queued: `{ id, type, created: true, state, url }`', 200: 'this jobId was submitted before with the same payload', 409: 'this jobId was submitted with another payload', ...errors },
  },
  'GET /api/jobs/:id': {
    summary: "A job's state, attempts, build records and latest log",
    query: jobQuery,
    responses: { 200: 'the job', 404: 'no such job', ...errors },
  },
  'GET /api/jobs/:id/log': {
    summary: "The latest attempt's log from a byte offset, long-polling for more",
    query: logQuery,
    responses: { 200: '`{ attempt, offset, nextOffset, data, done, state }`', 404: 'no such job', ...errors },
  },
  'GET /api/jobs/:id/log.txt': {
    summary: "An attempt's whole log as text, for download",
    query: logTextQuery,
    produces: 'text/plain',
    responses: { 200: 'the log, byte for byte (`content-disposition: attachment`)', 404: 'no such job or attempt', ...errors },
  },
  'POST /api/jobs/:id/cancel': {
    summary: 'Cancel a job: a waiting one is removed, a running build is killed (SIGTERM, then SIGKILL after the grace)',
    query: typeQuery,
    body: [cancelBody],
    responses: {
      200: '`{ id, type, state: "cancelled", was, by, reason }`',
      202: '`{ ..., state: "cancelling" }`: the master holding it has not confirmed yet; the cancel is kept and done by whichever master takes the job',
      404: 'no such job',
      409: 'already finished (`SPILLWAY_E_JOB_FINISHED`)',
      ...errors,
    },
  },
  'POST /api/jobs/:id/retry': {
    summary: 'Submit a finished job again with the same payload, linked both ways (once per job)',
    query: typeQuery,
    responses: { 201: '`{ id, retryOf, created: true, url }`', 200: 'retried before: that retry, `created: false`', 404: 'no such job', 409: 'still waiting or running (`SPILLWAY_E_JOB_NOT_FINISHED`)', ...errors },
  },
  'GET /api/builds': { summary: 'Recent builds, newest first', query: buildsQuery, responses: { 200: '`{ builds: [...] }`', ...errors } },
  'GET /api/queues': { summary: 'Per job type: counts, oldest wait, running on-prem / cloud, executors', responses: { 200: '`{ queues: [...] }`', 503: errors[503] } },
  'GET /api/agents': { summary: 'Connected agents', responses: { 200: '`{ agents: [...] }`' } },
  'GET /api/pools': {
    summary: 'Cloud pools: instances, latest decision, launch error, spot fallback',
    responses: { 200: '`{ pools: [...] }`', 503: errors[503] },
  },
  'GET /api/rules': { summary: 'The effective overflow rule of every job type', responses: { 200: '`{ rules: { type: rule } }`', 503: errors[503] } },
  'PUT /api/rules/:type': {
    summary: "Change a job type's overflow rule (the fields given)",
    body: [overflowSchema.partial()],
    responses: { 200: '`{ type, rule }`', 404: 'unknown job type', 409: 'no pools are configured', ...errors },
  },
  'GET /api/overview': { summary: 'Everything the dashboard shows, as one document', responses: { 200: 'the overview', 503: errors[503] } },
  'GET /api/events': { summary: 'Server-sent events: `event: overview` at once and after every change', produces: 'text/event-stream', responses: { 200: 'the stream' } },
  'GET /api/history': { summary: "The charts' samples, oldest first", query: historyQuery, responses: { 200: '`{ samples: [...] }`', ...errors } },
  'GET /api/cost': { summary: 'Instance-hours and cost, today and this week', responses: { 200: 'the usage report', 503: errors[503] } },
  'GET /api/openapi.json': { summary: 'This document', responses: { 200: 'OpenAPI 3.1' } },
  'GET /healthz': { summary: "Each part's state; answers anyone", responses: { 200: '`{ ok: true, redis: "ok", agentListener: "ok" }`', 503: '`ok: false` and the failing part\'s reason' } },
  'GET /metrics': { summary: 'Prometheus metrics, every name prefixed `spillway_`', produces: 'text/plain; version=0.0.4', responses: { 200: 'the exposition text' } },
  'GET /': { summary: 'The dashboard page', produces: 'text/html', responses: { 200: 'the page' } },
  'GET /log': { summary: "A build's log followed live (page)", produces: 'text/html', responses: { 200: 'the page' } },
  'GET /assets/:file': { summary: "The dashboard's files", produces: 'text/javascript', responses: { 200: 'the file', 404: 'no such asset' } },
};
