import { strict as assert } from 'node:assert';
import { farmConfigRaw, TestFarm } from '../helpers/farm';

/**
 * Every route fastify has, read from its own route tree (`printRoutes`), not from the list the
 * document is built from: "METHOD /full/path" for each method (HEAD left out).
 */
function registeredRoutes(tree: string): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^((?:[│ ] {3})*)(?:├── |└── )(.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    stack.push(m[2]!);
    const path = stack.join('');
    for (const method of (m[3] ?? '').split(', ').filter((x) => x && x !== 'HEAD')) out.push(`${method} ${path}`);
  }
  return out;
}

describe('GET /api/openapi.json: the HTTP API as OpenAPI 3, generated from the routes\' zod schemas', () => {
  let farm: TestFarm;
  before(async () => {
    farm = await new TestFarm(
      farmConfigRaw({
        http: { host: '127.0.0.1', port: 0, tokens: { read: ['read-token-0123456789ab'], submit: ['submit-token-0123456789'], admin: ['admin-token-0123456789'] } },
        pools: { local: { provider: 'local', maxInstances: 1, local: { preCreated: 0 } } },
        jobTypes: { b2g: { overflow: { pool: 'local' } } },
      }),
    ).start();
  });
  after(() => farm.stop());

  it('needs a read token like every GET route', async () => {
    const none = await fetch(`${farm.addr.httpUrl}/api/openapi.json`);
    assert.equal(none.status, 401);
    const wrong = await fetch(`${farm.addr.httpUrl}/api/openapi.json`, { headers: { authorization: 'Bearer not-a-known-token-at-all' } });
    assert.equal(wrong.status, 401);
  });

  it('documents every registered /api route (and /healthz, /metrics) with its method', async () => {
    const routes = registeredRoutes(farm.daemon.httpServer.printRoutes({ commonPrefix: false }));
    const api = routes.filter((r) => / \/api\//.test(r) || / \/(healthz|metrics)$/.test(r));
    assert.ok(api.length >= 15, `found the routes: ${api.join(', ')}`);
    assert.ok(api.includes('GET /api/jobs/:id/log') && api.includes('PUT /api/rules/:type'), api.join(', '));
    const doc = await farm.api<{ openapi: string; paths: Record<string, Record<string, unknown>> }>('/api/openapi.json');
    assert.match(doc.openapi, /^3\./);
    const missing = api.filter((r) => {
      const [method, url] = r.split(' ') as [string, string];
      return !doc.paths[url.replace(/:(\w+)/g, '{$1}')]?.[method.toLowerCase()];
    });
    assert.deepEqual(missing, [], `routes missing from /api/openapi.json: add them to ROUTE_DOCS (src/http/route-docs.ts)`);
  });

  it('describes requests with the schemas the routes validate with, and the token each route needs', async () => {
    type Op = { security: object[]; 'x-spillway-access': string; parameters: Array<{ name: string; in: string; required: boolean; schema: Record<string, unknown> }>; requestBody?: { content: Record<string, { schema: { allOf?: Array<{ properties: Record<string, unknown>; required?: string[] }> ; properties?: Record<string, unknown> } }> } };
    const doc = await farm.api<{ paths: Record<string, Record<string, Op>> }>('/api/openapi.json');
    const submit = doc.paths['/api/jobs']!.post!;
    assert.equal(submit['x-spillway-access'], 'submit');
    assert.deepEqual(submit.security, [{ submit: [] }]);
    const [payload, options] = submit.requestBody!.content['application/json']!.schema.allOf!;
    assert.ok(payload && 'argv' in payload.properties && 'shell' in payload.properties && 'requirements' in payload.properties);
    assert.ok(options && 'jobId' in options.properties && options.required?.includes('type'));
    const log = doc.paths['/api/jobs/{id}/log']!.get!;
    assert.deepEqual(log.parameters.map((p) => `${p.in}:${p.name}`), ['path:id', 'query:type', 'query:attempt', 'query:offset', 'query:waitMs']);
    assert.equal(log.parameters.find((p) => p.name === 'waitMs')!.schema.maximum, 30_000, 'the limit the route enforces');
    const rules = doc.paths['/api/rules/{type}']!.put!;
    assert.equal(rules['x-spillway-access'], 'admin');
    assert.ok('minBacklog' in rules.requestBody!.content['application/json']!.schema.properties!);
    assert.deepEqual(doc.paths['/healthz']!.get!.security, [], 'open');
    // What the document says is what the route does: over the documented maximum is refused.
    const res = await fetch(`${farm.addr.httpUrl}/api/builds?limit=1001`, { headers: farm.auth('read') });
    assert.equal(res.status, 400);
    const builds = doc.paths['/api/builds']!.get!;
    assert.equal(builds.parameters.find((p) => p.name === 'limit')!.schema.maximum, 1000);
  });
});
