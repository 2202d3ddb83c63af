import winston from 'winston';
import Transport from 'winston-transport';
import type { LogEvent } from './log-events';

export type LogFields = Record<string, unknown>;
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/** A structured logger: one declared event per line, with fields instead of interpolation. */
export interface Logger {
  error(event: LogEvent, fields?: LogFields): void;
  warn(event: LogEvent, fields?: LogFields): void;
  info(event: LogEvent, fields?: LogFields): void;
  debug(event: LogEvent, fields?: LogFields): void;
  /** A logger whose every line also carries `fields` (component, agent, job id...). */
  child(fields: LogFields): Logger;
}

export interface LogEntry extends LogFields {
  level: LogLevel;
  event: LogEvent;
}

export interface LoggerOptions {
  /** @defaultValue 'info' */
  level?: LogLevel;
  /**
   * `json`: one JSON object per line; `pretty`: for a human at a terminal; `auto`: pretty when
   * the stream is a terminal, JSON otherwise (log shippers get JSON). @defaultValue 'json'
   */
  format?: 'json' | 'pretty' | 'auto';
  /** Where lines go. @defaultValue process.stderr */
  stream?: NodeJS.WritableStream;
  /** Receives every entry as an object as well (tests assert on events through it). */
  sink?: (entry: LogEntry) => void;
  /** Log nothing at all except to `sink`. */
  silent?: boolean;
}

// `tokens`, `agentTokens`, `adminToken`, WireGuard's `privateKey` / `presharedKey`, a TLS
// key's `passphrase`: every secret field spillway has matches one of these.
const SECRET_KEY = /token|secret|password|authorization|credential|private.?key|preshared.?key|passphrase/i;
// PEM private keys can turn up inside a string (an error message quoting a file, say).
const PEM_PRIVATE_KEY = /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?(?:-----END \1PRIVATE KEY-----|$)/g;

/** Whether a field of this name holds a secret (the rule every log line is redacted by). */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

/** Replaces the values of secret-looking keys, at any depth, so secrets never reach a log. */
export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return value.includes('PRIVATE KEY-----') ? value.replace(PEM_PRIVATE_KEY, '[redacted private key]') : value;
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value instanceof Error) return { name: value.name, message: redact(value.message) };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEY.test(k) && v !== undefined ? '[redacted]' : redact(v, depth + 1);
  }
  return out;
}

class SinkTransport extends Transport {
  constructor(private readonly sink: (entry: LogEntry) => void) {
    super();
  }
  override log(info: LogEntry, next: () => void): void {
    this.sink(info);
    next();
  }
}

const pretty = winston.format.printf((info) => {
  const { level, event, message: _m, timestamp, ...rest } = info;
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${String(timestamp)} ${level} ${String(event)} ${fields}`;
});

const redactFormat = winston.format((info) => {
  for (const [k, v] of Object.entries(info)) {
    info[k] = SECRET_KEY.test(k) ? '[redacted]' : redact(v);
  }
  // Events carry fields, not prose; winston's empty message would only be noise on every line.
  if (info.message === '') delete (info as { message?: unknown }).message;
  return info;
});

export function createLogger(options: LoggerOptions = {}): Logger {
  const transports: Transport[] = [];
  if (!options.silent) {
    const stream = options.stream ?? process.stderr;
    const readable = options.format === 'pretty' || (options.format === 'auto' && (stream as { isTTY?: boolean }).isTTY === true);
    transports.push(
      new winston.transports.Stream({
        stream,
        format: readable
          ? winston.format.combine(winston.format.timestamp(), pretty)
          : winston.format.combine(winston.format.timestamp(), winston.format.json()),
      }),
    );
  }
  if (options.sink) transports.push(new SinkTransport(options.sink));
  if (transports.length === 0) transports.push(new winston.transports.Console({ silent: true }));
  const root = winston.createLogger({
    level: options.level ?? 'info',
    format: redactFormat(),
    transports,
  });
  return wrap(root);
}

function wrap(w: winston.Logger): Logger {
  const emit = (level: LogLevel) => (event: LogEvent, fields?: LogFields) => {
    if (!w.isLevelEnabled(level)) return;
    w.log({ level, message: '', event, ...fields });
  };
  return {
    error: emit('error'),
    warn: emit('warn'),
    info: emit('info'),
    debug: emit('debug'),
    child: (fields) => wrap(w.child(fields)),
  };
}
