import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import WebSocket from 'ws';
import { parseConfig } from '../../src/config';
import { CloseCode, type HelloFrame } from '../../src/protocol';
import { farmConfigRaw, TestFarm } from '../helpers/farm';
import { helloFrameFor as hello } from '../helpers/hello-frame';
import { makeTlsFixtures, type TlsFixtures } from '../helpers/tls-fixtures';

const OLD = 'old-default-token-0001';
const NEW = 'new-default-token-0002';
const POOL = 'pool-token-ec2-0003';

type Outcome = { welcomed: true; ws: WebSocket } | { welcomed: false; code?: number; reason?: string; error?: string };

/** Dials like an agent (or an intruder) and says hello: welcomed, closed with a code, or refused before the upgrade. */
function register(url: string, h: Partial<HelloFrame> = {}, options: WebSocket.ClientOptions = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, options);
    let error: string | undefined;
    ws.on('error', (err) => (error = err.message));
    ws.on('open', () => ws.send(JSON.stringify(hello(h))));
    ws.on('message', (d) => {
      if ((JSON.parse(d.toString()) as { type: string }).type === 'welcome') resolve({ welcomed: true, ws });
    });
    ws.on('close', (code, reason) => resolve(error ? { welcomed: false, error } : { welcomed: false, code, reason: reason.toString() }));
  });
}

function agentsRaw(agents: Record<string, unknown>, over: Record<string, unknown> = {}): Record<string, unknown> {
  const raw = farmConfigRaw(over);
  return { ...raw, agents: { ...(raw.agents as Record<string, unknown>), ...agents } };
}

const closed = (o: Outcome) => (o.welcomed ? (o.ws.close(), 'welcomed') : (o.code ?? o.error));

describe('agent listener: allow-list, tokens, rate limit, TLS', function () {
  let farm: TestFarm | undefined;
  afterEach(async () => {
    await farm?.stop();
    farm = undefined;
  });

  it('cuts off a peer outside agents.allow before the upgrade and logs its address', async () => {
    farm = await new TestFarm(agentsRaw({ allow: ['10.0.0.0/8', 'fd00::/8'] })).start();
    const o = await register(farm.addr.agentUrl);
    assert.equal(o.welcomed, false);
    assert.ok(!o.welcomed && o.error, `refused before any websocket close: ${JSON.stringify(o)}`);
    const line = await farm.logs.waitFor((e) => e.event === 'agent.refused');
    assert.equal(line.address, '127.0.0.1');
    assert.equal(line.reason, 'address not in agents.allow');
    assert.equal(farm.logs.entries.some((e) => e.event === 'agent.connected'), false);
  });

  it('accepts a peer inside agents.allow', async () => {
    farm = await new TestFarm(agentsRaw({ allow: ['10.0.0.0/8', '127.0.0.0/8'] })).start();
    await farm.agent({ name: 'inside' });
    assert.equal(farm.logs.entries.some((e) => e.event === 'agent.refused'), false);
  });

  it('matches an IPv4 peer of a dual-stack listener (::ffff:127.0.0.1) against IPv4 networks', async function () {
    if (!(await canListen('::'))) {
      console.log('      skipped: no IPv6 on this machine, cannot bind "::"');
      return this.skip();
    }
    farm = await new TestFarm(agentsRaw({ host: '::', allow: ['127.0.0.0/8'] })).start();
    const url = farm.addr.agentUrl;
    const mapped = await register(url, { name: 'v4-mapped' });
    assert.equal(mapped.welcomed, true);
    const agents = await farm.api<{ agents: Array<{ address: string }> }>('/api/agents');
    assert.equal(agents.agents[0]!.address, '::ffff:127.0.0.1');
    closed(mapped);
    const v6 = await register(url.replace('127.0.0.1', '[::1]'), { name: 'v6' });
    assert.ok(!v6.welcomed && v6.error, '::1 is not in 127.0.0.0/8');
    assert.equal((await farm.logs.waitFor((e) => e.event === 'agent.refused')).address, '::1');
  });

  it('accepts both tokens of a rotation, refuses a third, and revokes the old one when it is removed', async () => {
    const raw = agentsRaw({ token: undefined, tokens: [NEW, OLD] });
    farm = await new TestFarm(raw).start();
    const url = farm.addr.agentUrl;
    const withOld = await register(url, { name: 'on-old', token: OLD });
    assert.equal(withOld.welcomed, true);
    assert.equal(closed(await register(url, { name: 'on-new', token: NEW })), 'welcomed');
    const third = await register(url, { name: 'on-third', token: 'some-other-token-0004' });
    assert.equal(closed(third), CloseCode.unauthorized);
    assert.equal(JSON.stringify(farm.logs.entries).includes('some-other-token-0004'), false, 'tokens are never logged');

    const revoked = new Promise<number>((r) => withOld.welcomed && withOld.ws.once('close', (code) => r(code)));
    const restartOnly = farm.daemon.reload(parseConfig(agentsRaw({ token: undefined, tokens: [NEW] }, { redis: raw.redis }), {}));
    assert.deepEqual(restartOnly, []);
    assert.equal(await revoked, CloseCode.unauthorized);
    assert.equal((await farm.logs.waitFor((e) => e.event === 'agent.revoked')).agent, 'on-old');
    assert.equal(closed(await register(url, { name: 'on-old', token: OLD })), CloseCode.unauthorized);
  });

  it("admits a pool's token only for cloud agents serving that pool's job types", async () => {
    farm = await new TestFarm(
      farmConfigRaw({
        jobTypes: { b2g: { overflow: { pool: 'ec2-builders' } }, linux64: {} },
        pools: { 'ec2-builders': { provider: 'local', maxInstances: 1, local: { preCreated: 0 }, agentTokens: [POOL] } },
      }),
      { agentCommand: ['/bin/false'] },
    ).start();
    const url = farm.addr.agentUrl;
    assert.equal(closed(await register(url, { name: 'cloud-1', token: POOL, location: 'cloud', jobTypes: ['b2g'] })), 'welcomed');
    const { agents } = await farm.api<{ agents: Array<{ name: string; pool: string | null }> }>('/api/agents');
    assert.deepEqual(agents, [{ ...agents[0]!, name: 'cloud-1', pool: 'ec2-builders' }]);
    const onprem = await register(url, { name: 'fake-onprem', token: POOL, location: 'onprem', jobTypes: ['b2g'] });
    assert.equal(closed(onprem), CloseCode.forbidden);
    const foreign = await register(url, { name: 'greedy', token: POOL, location: 'cloud', jobTypes: ['b2g', 'linux64'] });
    assert.equal(closed(foreign), CloseCode.forbidden);
    assert.match(!foreign.welcomed ? (foreign.reason ?? '') : '', /does not cover job types linux64/);
    // The default token still admits anyone, an on-prem agent for every type included.
    assert.equal(closed(await register(url, { name: 'onprem-1', jobTypes: ['b2g', 'linux64'] })), 'welcomed');
  });

  it('rate limits registration attempts per address with close code 4430 and a log line', async () => {
    farm = await new TestFarm(agentsRaw({ registrationRate: { burst: 3, perMinute: 1 } })).start();
    const url = farm.addr.agentUrl;
    for (let i = 0; i < 3; i++) assert.equal(closed(await register(url, { name: `a${i}`, token: 'wrong-token-guess' })), CloseCode.unauthorized);
    const limited = await register(url, { name: 'a4' });
    assert.equal(closed(limited), CloseCode.rateLimited);
    assert.match(!limited.welcomed ? (limited.reason ?? '') : '', /too many registration attempts .*retry in \d+s/);
    const line = await farm.logs.waitFor((e) => e.event === 'agent.rate-limited');
    assert.equal(line.address, '127.0.0.1');
    // The daemon is fine: its HTTP API answers.
    assert.deepEqual(await farm.api('/healthz'), { ok: true, redis: 'ok', agentListener: 'ok' });
  });

  describe('wss', function () {
    let tls: TlsFixtures | undefined;
    before(function () {
      tls = makeTlsFixtures();
      if (!tls) {
        console.log('      skipped: openssl is not installed (apt-get install openssl)');
        this.skip();
      }
    });

    it('serves wss with a self-signed certificate that agents trust with --ca', async () => {
      farm = await new TestFarm(agentsRaw({ tls: { cert: tls!.selfSigned.cert, key: tls!.selfSigned.key } })).start();
      assert.match(farm.addr.agentUrl, /^wss:\/\/127\.0\.0\.1:\d+$/);
      const untrusted = await register(farm.addr.agentUrl, { name: 'no-ca' });
      assert.match(!untrusted.welcomed ? (untrusted.error ?? '') : '', /self[- ]signed/);
      const ca = readFileSync(tls!.selfSigned.cert);
      assert.equal(closed(await register(farm.addr.agentUrl, { name: 'with-ca' }, { ca })), 'welcomed');
      await farm.agent({ name: 'agent-with-ca', tls: { ca } });
    });

    it('requires a client certificate signed by agents.tls.ca when requireClientCert is set', async () => {
      farm = await new TestFarm(
        agentsRaw({ tls: { cert: tls!.server.cert, key: tls!.server.key, ca: tls!.ca.cert, requireClientCert: true } }),
      ).start();
      const ca = readFileSync(tls!.ca.cert);
      const noCert = await register(farm.addr.agentUrl, { name: 'no-cert' }, { ca });
      assert.equal(noCert.welcomed, false);
      assert.ok(!noCert.welcomed && noCert.error, JSON.stringify(noCert));
      const line = await farm.logs.waitFor((e) => e.event === 'agent.tls-failed');
      assert.match(String(line.reason), /certificate/i);
      const selfMade = await register(farm.addr.agentUrl, { name: 'self-made' }, { ca, cert: readFileSync(tls!.selfSigned.cert), key: readFileSync(tls!.selfSigned.key) });
      assert.equal(selfMade.welcomed, false, 'a certificate the CA did not sign is refused too');
      const client = { ca, cert: readFileSync(tls!.client.cert), key: readFileSync(tls!.client.key) };
      await farm.agent({ name: 'agent-1', tls: client });
    });
  });
});

async function canListen(host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(0, host, () => s.close(() => resolve(true)));
  });
}
