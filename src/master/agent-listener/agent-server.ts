import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Config } from '../../config';
import { formatIp, parseIp, RateLimiter, RefusalLog, type Clock, type Logger } from '../../lib';
import { CloseCode, parseAgentFrame, PROTOCOL_VERSION, type HelloFrame, type MasterFrame } from '../../protocol';
import { AgentAccess } from './agent-access';
import { agentFromHello, type AgentRegistry, type ConnectedAgent } from '../agent-registry';
import type { Dispatcher } from '../dispatcher';
import { listenerTls, type ReadFile } from './listener-tls';
import { TickCork } from './tick-cork';
import { IngestBudget } from './ingest-budget';


/** Rejected frames tolerated per connection before it is closed. */
const MAX_BAD_FRAMES = 20;

export interface AgentServerDeps {
  config: Config;
  registry: AgentRegistry;
  dispatcher: Dispatcher;
  clock: Clock;
  log: Logger;
  /** Reads the certificate files `agents.tls` names. @defaultValue fs.readFileSync */
  readFile?: ReadFile;
}

/**
 * The websocket listener agents connect to. A peer outside `agents.allow` is cut off as soon
 * as its TCP connection arrives (before TLS and the upgrade); each address gets a bucket of
 * registration attempts; each connection must then authenticate with a hello frame within
 * `helloTimeoutSec`; every later frame is validated, and a bad one is answered with an error
 * frame without harming the connection or the daemon.
 */
export class AgentServer {
  private server: Server | HttpsServer | undefined;
  private wss: WebSocketServer | undefined;
  private access: AgentAccess;
  private limiter: RateLimiter;
  private readonly refusals: RefusalLog;
  private readonly readFile: ReadFile;
  /** The token each agent registered with, to re-check it when the tokens change. */
  private readonly credentials = new WeakMap<ConnectedAgent, string>();
  /** Frames written in one turn of the event loop leave each socket together (see TickCork). */
  private readonly cork = new TickCork();
  private readonly ingest: IngestBudget;

  constructor(private readonly d: AgentServerDeps) {
    this.access = new AgentAccess(d.config);
    this.limiter = new RateLimiter(d.config.agents.registrationRate, d.clock);
    this.refusals = new RefusalLog(d.log, d.clock);
    this.readFile = d.readFile ?? ((path) => readFileSync(path));
    const { framesPerConnection, maxMb } = d.config.agents.ingest;
    this.ingest = new IngestBudget({ framesPerConnection, maxBytes: maxMb * 1024 * 1024 });
  }

  /** Listens; the URL scheme agents need is `wss` when the listener has a certificate. */
  async listen(): Promise<{ host: string; port: number; scheme: 'ws' | 'wss' }> {
    const { host, port, maxFrameBytes, tls } = this.d.config.agents;
    const onRequest = (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('spillway agent listener: websocket upgrade required\n');
    };
    const server = tls ? createHttpsServer(listenerTls(tls, this.readFile), onRequest) : createServer(onRequest);
    this.server = server;
    // First in line, so a refused peer costs no TLS handshake and no HTTP parsing.
    server.prependListener('connection', (socket: Socket) => {
      const address = socket.remoteAddress ?? 'unknown';
      if (this.access.allows(address)) return;
      this.refusals.warn('agent.refused', address, { reason: 'address not in agents.allow' });
      socket.destroy();
    });
    server.on('tlsClientError', (err: Error, socket: Socket) => {
      if (socket.destroyed && !this.access.allows(socket.remoteAddress ?? 'unknown')) return;
      this.refusals.warn('agent.tls-failed', socket.remoteAddress ?? 'unknown', { reason: err.message });
    });
    this.wss = new WebSocketServer({ server, maxPayload: maxFrameBytes });
    this.wss.on('connection', (ws, req) => this.onUpgraded(ws, req.socket, req.socket.remoteAddress ?? 'unknown'));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    const addr = server.address() as AddressInfo;
    const scheme = tls ? 'wss' : 'ws';
    this.d.log.info('agents.listening', {
      host: addr.address,
      port: addr.port,
      scheme,
      allow: this.d.config.agents.allow ?? 'any address',
      clientCerts: tls?.requireClientCert ?? false,
    });
    return { host: addr.address, port: addr.port, scheme };
  }

  /** Whether agents can connect: the listener's address, or why not. */
  health(): { ok: true; detail: string } | { ok: false; detail: string } {
    const addr = this.server?.listening ? (this.server.address() as AddressInfo | null) : null;
    if (!addr) return { ok: false, detail: this.server ? 'not listening' : 'not started' };
    return { ok: true, detail: `listening on ${addr.address}:${addr.port}` };
  }

  /**
   * Applies re-read tokens, allow-list, rate limit and certificate files (SIGHUP). Connected
   * agents whose address or token the new rules refuse are disconnected: a token taken out of
   * a rotation is revoked at once, not at the agent's next reconnect.
   */
  updateAccess(next: Config): void {
    const tls = next.agents.tls;
    if (tls && this.server && 'setSecureContext' in this.server) this.server.setSecureContext(listenerTls(tls, this.readFile));
    this.access = new AgentAccess(next);
    this.limiter = new RateLimiter(next.agents.registrationRate, this.d.clock);
    for (const agent of this.d.registry.list()) {
      const token = this.credentials.get(agent);
      if (token === undefined) continue;
      const verdict = this.access.allows(agent.address)
        ? this.access.admit({ token, location: agent.location, jobTypes: [...agent.jobTypes] })
        : ({ ok: false, status: 'forbidden', reason: 'address not in agents.allow' } as const);
      if (verdict.ok) continue;
      this.d.log.warn('agent.revoked', { agent: agent.name, address: agent.address, reason: verdict.reason });
      agent.close(verdict.status === 'unauthorized' ? CloseCode.unauthorized : CloseCode.forbidden, `access revoked: ${verdict.reason}`);
    }
  }

  async close(): Promise<void> {
    for (const ws of this.wss?.clients ?? []) ws.close(CloseCode.goingAway, 'master shutting down');
    await new Promise<void>((resolve) => (this.wss ? this.wss.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    for (const ws of this.wss?.clients ?? []) ws.terminate();
  }

  private onUpgraded(ws: WebSocket, socket: Socket, address: string): void {
    // One bucket per address however a dual-stack socket spells it (::ffff:10.0.0.5 is 10.0.0.5).
    const ip = parseIp(address);
    const verdict = this.limiter.take(ip ? formatIp(ip) : address);
    if (!verdict.ok) {
      const retrySec = Math.ceil(verdict.retryInMs / 1000);
      this.refusals.warn('agent.rate-limited', address, { retryInMs: verdict.retryInMs });
      ws.close(CloseCode.rateLimited, `too many registration attempts from ${address}; retry in ${retrySec}s`);
      return;
    }
    this.onConnection(ws, socket, address);
  }

  private onConnection(ws: WebSocket, socket: Socket, address: string): void {
    const log = this.d.log.child({ address });
    const connId = randomUUID();
    let agent: ConnectedAgent | undefined;
    let badFrames = 0;
    let helloSeen = false;
    log.debug('agent.connected', { connId });
    const lane = this.ingest.lane({
      pause: (reason) => {
        ws.pause();
        if (agent) this.d.registry.setReadsPaused(agent, true, this.d.clock.now());
        log.debug('agent.reads-paused', { agent: agent?.name, reason, frames: lane.frames, bytes: lane.bytes, totalBytes: this.ingest.heldBytes });
      },
      resume: () => {
        ws.resume();
        if (agent) this.d.registry.setReadsPaused(agent, false, this.d.clock.now());
        log.debug('agent.reads-resumed', { agent: agent?.name });
      },
    });
    const send = (f: MasterFrame) => {
      if (ws.readyState !== ws.OPEN) return;
      this.cork.hold(socket);
      ws.send(JSON.stringify(f));
    };
    const alive = (timeoutMs: number) =>
      new Promise<boolean>((resolve) => {
        if (ws.readyState !== ws.OPEN) return resolve(false);
        const wait = new AbortController();
        const onPong = () => (wait.abort(), resolve(true));
        ws.once('pong', onPong);
        ws.ping();
        this.d.clock.sleep(timeoutMs, wait.signal).then(
          () => (ws.off('pong', onPong), resolve(false)),
          () => undefined,
        );
      });
    // On the injected clock, so tests can drive it; aborted by the hello or the close.
    const helloTimer = new AbortController();
    this.d.clock.sleep(this.d.config.agents.helloTimeoutSec * 1000, helloTimer.signal).then(
      () => {
        log.warn('agent.auth-failed', { reason: 'no hello in time' });
        ws.close(CloseCode.badHello, 'hello expected');
      },
      () => undefined,
    );

    const reject = (reason: string) => {
      badFrames++;
      log.warn('agent.frame-rejected', { agent: agent?.name, reason, count: badFrames });
      send({ type: 'error', code: 'SPILLWAY_E_FRAME', message: reason });
      if (badFrames >= MAX_BAD_FRAMES) ws.close(CloseCode.tooManyErrors, 'too many invalid frames');
    };

    // What the handler returns is the frame's remaining work; the ingest budget counts the
    // frame until it settles.
    const onMessage = (data: RawData, isBinary: boolean): Promise<unknown> | void => {
      if (isBinary) return reject('binary frames are not part of the protocol');
      const parsed = parseAgentFrame(data.toString());
      if (!parsed.ok) {
        if (!helloSeen) {
          helloTimer.abort();
          log.warn('agent.auth-failed', { reason: parsed.reason });
          ws.close(CloseCode.badHello, 'first frame must be a valid hello');
          return;
        }
        return reject(parsed.reason);
      }
      const f = parsed.frame;
      if (!helloSeen) {
        helloSeen = true;
        helloTimer.abort();
        if (f.type !== 'hello') {
          ws.close(CloseCode.badHello, 'first frame must be hello');
          return;
        }
        return this.onHello(ws, f, { connId, address, send, alive, log, registered: (a) => (agent = a) }).then((a) => {
          agent = a;
          if (a && lane.paused) this.d.registry.setReadsPaused(a, true, this.d.clock.now());
        });
      }
      if (!agent) return reject('hello still being processed');
      this.d.registry.seen(agent, this.d.clock.now());
      switch (f.type) {
        case 'hello':
          return reject('already registered');
        case 'heartbeat':
          return;
        case 'started':
          return this.d.dispatcher.onStarted(agent, f);
        case 'declined':
          return this.d.dispatcher.onDeclined(agent, f);
        case 'log':
          return this.d.dispatcher.onLog(agent, f.queue, f.jobId, f.data, f.offset);
        case 'finished':
          return this.d.dispatcher.onFinished(agent, f);
        case 'draining':
          this.d.registry.setDraining(agent, true);
          log.info('agent.draining', { agent: agent.name, running: agent.running.size });
          this.d.dispatcher.capacityChanged();
          return;
        case 'notice':
          return this.d.dispatcher.notice(agent, f.notice, { source: 'imds', action: f.action, at: f.at });
        case 'disk': {
          const shortage = f.full ? { path: f.path, freeMb: f.freeMb, minFreeMb: f.minFreeMb } : undefined;
          this.d.registry.setDiskFull(agent, shortage);
          log[f.full ? 'warn' : 'info'](f.full ? 'agent.disk-full' : 'agent.disk-ok', { agent: agent.name, path: f.path, freeMb: f.freeMb, minFreeMb: f.minFreeMb });
          this.d.dispatcher.capacityChanged();
          return;
        }
      }
    };
    // A bug in handling one connection's frame must cost that connection, never the master
    // and every other agent's builds with it.
    const handlerFailed = (err: unknown): void => {
      log.error('agent.handler-failed', { agent: agent?.name, address, error: err });
      ws.close(1011, 'internal error');
    };
    ws.on('message', (data, isBinary) => {
      const done = lane.take(byteLength(data));
      try {
        const work = onMessage(data, isBinary);
        if (!work) return done();
        work.then(done, (err: unknown) => (done(), handlerFailed(err)));
      } catch (err) {
        done();
        handlerFailed(err);
      }
    });

    ws.on('error', (err) => log.warn('agent.frame-rejected', { agent: agent?.name, reason: err.message }));
    ws.on('close', (code, reason) => {
      helloTimer.abort();
      lane.close();
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
    c: {
      connId: string;
      address: string;
      send: (f: MasterFrame) => void;
      alive: (timeoutMs: number) => Promise<boolean>;
      log: Logger;
      registered: (agent: ConnectedAgent) => void;
    },
  ): Promise<ConnectedAgent | undefined> {
    const admission = this.access.admit(hello);
    if (!admission.ok) {
      c.log.warn('agent.auth-failed', { agent: hello.name, location: hello.location, reason: admission.reason });
      if (admission.status === 'unauthorized') ws.close(CloseCode.unauthorized, 'unauthorized: wrong agent token');
      else ws.close(CloseCode.forbidden, `forbidden: ${admission.reason}`);
      return undefined;
    }
    if (hello.protocol !== PROTOCOL_VERSION) {
      c.log.warn('agent.auth-failed', { agent: hello.name, reason: `protocol ${hello.protocol}, master speaks ${PROTOCOL_VERSION}` });
      ws.close(CloseCode.version, `protocol version ${PROTOCOL_VERSION} required`);
      return undefined;
    }
    const unknownJobTypes = hello.jobTypes.filter((t) => !Object.hasOwn(this.d.config.jobTypes, t));
    const agent = agentFromHello(hello, {
      id: c.connId,
      address: c.address,
      pool: admission.principal.kind === 'pool' ? admission.principal.pool : undefined,
      now: this.d.clock.now(),
      send: c.send,
      close: (code, reason) => ws.close(code, reason),
      alive: c.alive,
      unknownJobTypes,
    });
    if (!(await this.takeName(ws, agent, c.log))) return undefined;
    this.d.registry.joining(agent);
    // An agent that resends output takes its finished builds back first, so that output is
    // stored before their results are.
    const resent = hello.logOffsets ? hello.finished.map(({ queue, jobId, lockToken }) => ({ queue, jobId, lockToken })) : [];
    const reattached = await this.d.dispatcher.reattach(agent, hello.running, resent);
    if (ws.readyState !== ws.OPEN) {
      this.d.registry.remove(agent);
      this.d.dispatcher.orphan(agent);
      return undefined;
    }
    this.credentials.set(agent, hello.token);
    this.d.registry.add(agent);
    // Frames may follow the welcome at once; they belong to this agent from now on.
    c.registered(agent);
    c.send({
      type: 'welcome',
      agentId: agent.id,
      heartbeatMs: this.d.config.agents.heartbeatSec * 1000,
      reattached,
      // Agents of the previous version check welcomes strictly: only those that asked get it.
      ...(hello.logOffsets && { logMaxBytes: this.d.config.builds.logMaxBytes }),
    });
    c.log.info('agent.registered', {
      agent: agent.name,
      location: agent.location,
      pool: agent.pool,
      instanceId: agent.instanceId,
      jobTypes: [...agent.jobTypes],
      executors: agent.executors,
      reattached: reattached.length,
      version: agent.version,
    });
    if (unknownJobTypes.length) {
      const known = Object.keys(this.d.config.jobTypes).join(', ');
      c.log.warn('agent.unknown-job-types', { agent: agent.name, jobTypes: unknownJobTypes, known });
      // An error frame: every agent version logs it as a warning.
      c.send({ type: 'error', code: 'SPILLWAY_E_UNKNOWN_JOB_TYPES', message: `this master has no job types ${unknownJobTypes.join(', ')} (known: ${known}); no jobs of them will come` });
    }
    for (const f of hello.finished) {
      if (!reattached.some((r) => r.queue === f.queue && r.jobId === f.jobId)) await this.d.dispatcher.onFinished(agent, f);
    }
    this.d.dispatcher.capacityChanged();
    return agent;
  }

  /**
   * Whether `agent` may use its name. A connection already holding the name keeps it while it
   * answers a ping: a second live agent with the same name is refused (4409), not allowed to
   * evict the first (they would evict each other for ever). The same machine (same instance
   * id) or an old connection that no longer answers is replaced: that is the agent coming back.
   */
  private async takeName(ws: WebSocket, agent: ConnectedAgent, log: Logger): Promise<boolean> {
    const previous = this.d.registry.byAgentName(agent.name);
    if (!previous) return true;
    const sameMachine = agent.instanceId !== undefined && agent.instanceId === previous.instanceId;
    const probeMs = Math.min(10_000, Math.max(1000, this.d.config.agents.heartbeatSec * 2000));
    if (!sameMachine && (await previous.alive(probeMs)) && this.d.registry.byAgentName(agent.name) === previous) {
      log.warn('agent.duplicate-name', { agent: agent.name, address: agent.address, holder: previous.address, reason: 'name in use by a live connection' });
      ws.close(CloseCode.duplicateName, `agent name "${agent.name}" is in use by a live agent at ${previous.address}; give each agent its own --name`);
      return false;
    }
    if (this.d.registry.byAgentName(agent.name) !== previous) return this.takeName(ws, agent, log);
    log.info('agent.replaced', { agent: agent.name, address: agent.address, previous: previous.address, sameMachine });
    this.d.registry.remove(previous);
    this.d.dispatcher.orphan(previous);
    previous.close(CloseCode.duplicateName, 'replaced by a newer connection of the same agent');
    return ws.readyState === ws.OPEN;
  }
}

function byteLength(data: RawData): number {
  return Array.isArray(data) ? data.reduce((n, b) => n + b.byteLength, 0) : data.byteLength;
}
