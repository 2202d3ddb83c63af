import WebSocket from 'ws';
import type { Clock } from '../lib';
import { CloseCode, type AgentFrame } from '../protocol';

/** Above this much unsent data on the socket, callers should hold back (build output does). */
const MAX_SOCKET_BACKLOG = 4 * 1024 * 1024;

export interface ConnectionEnd {
  code: number;
  reason: string;
  /** False when the connection never got past dialling (refused, DNS, handshake). */
  opened: boolean;
}

/** PEM material for wss://: a CA to trust the master's certificate with, a client certificate. */
export interface AgentTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

export interface ConnectionHandlers {
  onOpen(): void;
  onText(text: string): void;
}

/** One websocket to the master, from dialling to close; never throws, always ends in `closed`. */
export class MasterConnection {
  readonly closed: Promise<ConnectionEnd>;
  /** Aborted once the connection has closed, for timers that belong to it. */
  readonly signal: AbortSignal;
  /** When the master last sent anything (a frame or a pong). */
  lastHeard: number;
  private readonly ws: WebSocket | undefined;

  constructor(
    url: string,
    WebSocketImpl: typeof WebSocket,
    private readonly clock: Clock,
    tls: AgentTls | undefined,
    handlers: ConnectionHandlers,
  ) {
    const ended = new AbortController();
    this.signal = ended.signal;
    this.lastHeard = clock.now();
    let ws: WebSocket;
    try {
      ws = new WebSocketImpl(url, { handshakeTimeout: 10_000, ...tls });
    } catch (err) {
      ended.abort();
      this.closed = Promise.resolve({ code: 1006, reason: err instanceof Error ? err.message : String(err), opened: false });
      return;
    }
    this.ws = ws;
    let opened = false;
    let lastError = '';
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reasonBuf) => {
        ended.abort();
        // A master (or proxy) refusing at the HTTP upgrade is as final as a 4401 close.
        if (!opened && /Unexpected server response: 401\b/.test(lastError)) code = CloseCode.unauthorized;
        resolve({ code, reason: reasonBuf.toString('utf8') || lastError, opened });
      });
    });
    ws.on('open', () => {
      opened = true;
      this.lastHeard = clock.now();
      handlers.onOpen();
    });
    ws.on('message', (data, isBinary) => {
      this.lastHeard = clock.now();
      handlers.onText(isBinary ? '' : rawText(data));
    });
    ws.on('pong', () => (this.lastHeard = clock.now()));
    ws.on('error', (err) => (lastError = err.message));
  }

  get open(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Open and not backed up: worth handing more bulk data to. */
  get writable(): boolean {
    return this.open && (this.ws?.bufferedAmount ?? 0) < MAX_SOCKET_BACKLOG;
  }

  /** Sends if open; frames for a closed connection are dropped (hello covers what matters). */
  send(frame: AgentFrame): void {
    if (this.open) this.ws?.send(JSON.stringify(frame));
  }

  ping(): void {
    if (this.open) this.ws?.ping();
  }

  terminate(): void {
    this.ws?.terminate();
  }

  /** Closes with a closing handshake, but not waiting long for a master that vanished. */
  close(code: number, reason: string): void {
    if (!this.open) return this.terminate();
    this.ws?.close(code, reason);
    this.clock.sleep(2000, this.signal).then(
      () => this.terminate(),
      () => undefined,
    );
  }
}

function rawText(data: WebSocket.RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
