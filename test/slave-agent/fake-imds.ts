import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small IMDSv2 on port 0 that, like the real one, refuses metadata without a valid session
 * token (401), issues tokens only on PUT with a TTL header, and answers 404 for metadata that
 * does not exist (no notice). The test sets `instanceAction` / `rebalance` to raise a notice
 * and can expire every issued token (`forgetTokens`) as an IMDS restart would.
 */
export class FakeImds {
  readonly requests: Array<{ method: string; url: string; token: string | undefined }> = [];
  instanceAction: string | undefined;
  rebalance: string | undefined;
  private readonly tokens = new Set<string>();
  private issued = 0;
  private server: Server | undefined;
  url = '';

  async start(instanceId = 'i-0123456789abcdef0'): Promise<this> {
    this.server = createServer((req, res) => {
      const token = req.headers['x-aws-ec2-metadata-token'];
      this.requests.push({ method: req.method ?? '', url: req.url ?? '', token: typeof token === 'string' ? token : undefined });
      if (req.url === '/latest/api/token') {
        if (req.method !== 'PUT') return void res.writeHead(405).end();
        const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
        if (!(ttl >= 1 && ttl <= 21_600)) return void res.writeHead(400).end();
        const t = `token-${++this.issued}`;
        this.tokens.add(t);
        return void res.writeHead(200, { 'content-type': 'text/plain' }).end(t);
      }
      if (req.method !== 'GET') return void res.writeHead(405).end();
      if (typeof token !== 'string' || !this.tokens.has(token)) return void res.writeHead(401).end();
      const doc: Record<string, string | undefined> = {
        '/latest/meta-data/instance-id': instanceId,
        '/latest/meta-data/spot/instance-action': this.instanceAction,
        '/latest/meta-data/events/recommendations/rebalance': this.rebalance,
      };
      const body = doc[req.url ?? ''];
      if (body === undefined) return void res.writeHead(404, { 'content-type': 'text/html' }).end('<?xml version="1.0"?><title>404 - Not Found</title>');
      res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  forgetTokens(): void {
    this.tokens.clear();
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
