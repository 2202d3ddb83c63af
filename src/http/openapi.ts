import { z } from 'zod';
import type { RouteAccess } from '../lib';
import { ROUTE_DOCS, type RouteDoc } from './route-docs';

/** A route as fastify registered it. */
export interface RegisteredRoute {
  method: string;
  url: string;
  /** Its `config.access`; undefined: the default (read for GET/HEAD, admin otherwise). */
  access: RouteAccess | undefined;
}

const TOKEN_OF: Record<RouteAccess, string | undefined> = { open: undefined, read: 'read', submit: 'submit', admin: 'admin' };

/** JSON Schema of what a client sends (defaults optional, coercions as their input type). */
function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const out = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  delete out.$schema;
  return out;
}

function queryParameters(doc: RouteDoc): object[] {
  if (!doc.query) return [];
  const s = jsonSchema(doc.query) as { properties?: Record<string, Record<string, unknown>>; required?: string[] };
  return Object.entries(s.properties ?? {}).map(([name, schema]) => ({ name, in: 'query', required: (s.required ?? []).includes(name), schema }));
}

/**
 * The OpenAPI 3.1 document of the routes given (those with a {@link ROUTE_DOCS} entry; HEAD
 * routes fastify adds for GETs are left out): paths, parameters, request bodies generated from
 * the zod schemas the routes validate with, and which token each needs.
 */
export function openApiDocument(routes: readonly RegisteredRoute[], docs: Readonly<Record<string, RouteDoc>> = ROUTE_DOCS): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    if (r.method === 'HEAD' && routes.some((o) => o.method === 'GET' && o.url === r.url)) continue;
    const doc = docs[`${r.method} ${r.url}`];
    if (!doc) continue;
    const path = r.url.replace(/:(\w+)/g, '{$1}');
    const params = [...r.url.matchAll(/:(\w+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const access = r.access ?? (r.method === 'GET' || r.method === 'HEAD' ? 'read' : 'admin');
    const token = TOKEN_OF[access];
    const produces = doc.produces ?? 'application/json';
    paths[path] ??= {};
    paths[path][r.method.toLowerCase()] = {
      summary: doc.summary,
      ...(doc.description && { description: doc.description }),
      'x-spillway-access': access,
      security: token ? [{ [token]: [] }] : [],
      parameters: [...params, ...queryParameters(doc)],
      ...(doc.body && {
        requestBody: {
          required: true,
          content: { 'application/json': { schema: doc.body.length === 1 ? jsonSchema(doc.body[0]!) : { allOf: doc.body.map(jsonSchema) } } },
        },
      }),
      responses: Object.fromEntries(
        Object.entries(doc.responses).map(([status, description]) => [status, { description, ...(status.startsWith('2') && { content: { [produces]: {} } }) }]),
      ),
    };
  }
  const bearer = (who: string) => ({ type: 'http', scheme: 'bearer', description: `a token of http.tokens.${who} or of a higher role (README: Who can do what, for when none is needed)` });
  return {
    openapi: '3.1.0',
    info: { title: 'spillway master HTTP API', version: '1', description: 'Errors are `{ error: { code, message } }`. Generated from the zod schemas the routes validate with.' },
    paths,
    components: { securitySchemes: { read: bearer('read'), submit: bearer('submit'), admin: bearer('admin') } },
  };
}
