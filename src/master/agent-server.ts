import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Config } from '../config';
import { sameSecret, type Clock, type Logger } from '../lib';
import { CloseCode, parseAgentFrame, PROTOCOL_VERSION, type HelloFrame, type MasterFrame } from '../protocol';
import { agentFromHello, type AgentRegistry, type ConnectedAgent } from './agent-registry';
import type { Dispatcher } from './dispatcher';

/** Rejected frames tolerated per connection before it is closed. */
const MAX_BAD_FRAMES = 20;

export interface AgentServerDeps {
  config: Config;
  registry: AgentRegistry;
  dispatcher: Dispatcher;
  clock: Clock;
  log: Logger;
}

/**
 * The websocket listener agents connect to. Each connection must authenticate with a hello
 * frame within `helloTimeoutSec`; every later frame is validated, and a bad one is answered
 * with an error frame without harming the connection or the daemon.
 */
export class AgentServer {
  private http: Server | undefined;
  private wss: WebSocketServer | undefined;

  constructor(private readonly d: AgentServerDeps) {}

  async listen(): Promise<{ host: string; port: number }> {
    const { host, port, maxFrameBytes } = this.d.config.agents;
    this.http = createServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('spillway agent listener: websocket upgrade required\n');
    });
    this.wss = new WebSocketServer({ server: this.http, maxPayload: maxFrameBytes });
    this.wss.on('connection', (ws, req) => this.onConnection(ws, req.socket.remoteAddress ?? 'unknown'));
    await new Promise<void>((resolve, reject) => {
      this.http!.once('error', reject);
      this.http!.listen(port, host, () => resolve());
    });
    const addr = this.http.address() as AddressInfo;
    this.d.log.info('agents.listening', { host: addr.address, port: addr.port });
    return { host: addr.address, port: addr.port };
  }

  async close(): Promise<void> {
    for (const ws of this.wss?.clients ?? []) ws.close(CloseCode.goingAway, 'master shutting down');
    await new Promise<void>((resolve) => (this.wss ? this.wss.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.http ? this.http.close(() => resolve()) : resolve()));
    for (const ws of this.wss?.clients ?? []) ws.terminate();
  }

  private onConnection(ws: WebSocket, address: string): void {
    const log = this.d.log.child({ address });
    const connId = randomUUID();
    let agent: ConnectedAgent | undefined;
    let badFrames = 0;
    let helloSeen = false;
    log.debug('agent.connected', { connId });
    const send = (f: MasterFrame) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(f));
    };
    const helloTimer = setTimeout(() => {
      log.warn('agent.auth-failed', { reason: 'no hello in time' });
      ws.close(CloseCode.badHello, 'hello expected');
    }, this.d.config.agents.helloTimeoutSec * 1000);

    const reject = (reason: string) => {
      badFrames++;
      log.warn('agent.frame-rejected', { agent: agent?.name, reason, count: badFrames });
      send({ type: 'error', code: 'SPILLWAY_E_FRAME', message: reason });
      if (badFrames >= MAX_BAD_FRAMES) ws.close(CloseCode.tooManyErrors, 'too many invalid frames');
    };

    ws.on('message', (data, isBinary) => {
      if (isBinary) return reject('binary frames are not part of the protocol');
      const parsed = parseAgentFrame(data.toString());
      if (!parsed.ok) {
        if (!helloSeen) {
          clearTimeout(helloTimer);
          log.warn('agent.auth-failed', { reason: parsed.reason });
          ws.close(CloseCode.badHello, 'first frame must be a valid hello');
          return;
        }
        return reject(parsed.reason);
      }
      const f = parsed.frame;
      if (!helloSeen) {
        helloSeen = true;
        clearTimeout(helloTimer);
        if (f.type !== 'hello') {
          ws.close(CloseCode.badHello, 'first frame must be hello');
          return;
        }
        void this.onHello(ws, f, { connId, address, send, log }).then((a) => (agent = a));
        return;
      }
      if (!agent) return reject('hello still being processed');
      agent.lastSeen = this.d.clock.now();
      switch (f.type) {
        case 'hello':
          return reject('already registered');
        case 'heartbeat':
          return;
        case 'started':
          return this.d.dispatcher.onStarted(agent, f);
        case 'log':
          return this.d.dispatcher.onLog(agent, f.queue, f.jobId, f.data);
        case 'finished':
          void this.d.dispatcher.onFinished(agent, f);
          return;
        case 'draining':
          agent.draining = true;
          log.info('agent.draining', { agent: agent.name, running: agent.running.size });
          this.d.dispatcher.capacityChanged();
          return;
      }
    });

    ws.on('error', (err) => log.warn('agent.frame-rejected', { agent: agent?.name, reason: err.message }));
    ws.on('close', (code, reason) => {
      clearTimeout(helloTimer);
      if (!agent) return;
      if (this.d.registry.remove(agent)) {
        log.info('agent.disconnected', { agent: agent.name, code, reason: reason.toString(), running: agent.running.size });
        this.d.dispatcher.orphan(agent);
        this.d.dispatcher.capacityChanged();
      }
    });
  }

  private async onHello(
    ws: WebSocket,
    hello: HelloFrame,
    c: { connId: string; address: string; send: (f: MasterFrame) => void; log: Logger },
  ): Promise<ConnectedAgent | undefined> {
    if (!sameSecret(hello.token, this.d.config.agents.token)) {
      c.log.warn('agent.auth-failed', { agent: hello.name, reason: 'wrong token' });
      ws.close(CloseCode.unauthorized, 'unauthorized: wrong agent token');
      return undefined;
    }
    if (hello.protocol !== PROTOCOL_VERSION) {
      c.log.warn('agent.auth-failed', { agent: hello.name, reason: `protocol ${hello.protocol}, master speaks ${PROTOCOL_VERSION}` });
      ws.close(CloseCode.version, `protocol version ${PROTOCOL_VERSION} required`);
      return undefined;
    }
    const agent = agentFromHello(hello, {
      id: c.connId,
      address: c.address,
      now: this.d.clock.now(),
      send: c.send,
      close: (code, reason) => ws.close(code, reason),
    });
    const previous = this.d.registry.byAgentName(hello.name);
    if (previous) {
      // Usually the same agent whose old connection has not timed out yet: the newest wins,
      // and the builds it reports move over below.
      this.d.registry.remove(previous);
      this.d.dispatcher.orphan(previous);
      previous.close(CloseCode.duplicateName, 'replaced by a newer connection with the same name');
    }
    const reattached = await this.d.dispatcher.reattach(agent, hello.running);
    if (ws.readyState !== ws.OPEN) {
      this.d.dispatcher.orphan(agent);
      return undefined;
    }
    this.d.registry.add(agent);
    c.send({ type: 'welcome', agentId: agent.id, heartbeatMs: this.d.config.agents.heartbeatSec * 1000, reattached });
    c.log.info('agent.registered', {
      agent: agent.name,
      location: agent.location,
      instanceId: agent.instanceId,
      jobTypes: [...agent.jobTypes],
      executors: agent.executors,
      reattached: reattached.length,
      version: agent.version,
    });
    for (const f of hello.finished) await this.d.dispatcher.onFinished(agent, f);
    this.d.dispatcher.capacityChanged();
    return agent;
  }
}
