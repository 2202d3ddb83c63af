import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../lib';
import { configSchema, type Config } from './schema';

export type Env = Readonly<Record<string, string | undefined>>;

/** Environment variables that override the file, and where they land. */
const OVERRIDES: ReadonlyArray<{ name: string; path: readonly string[]; kind: 'string' | 'port' | 'list' | 'int' }> = [
  { name: 'REDIS_URL', path: ['redis', 'url'], kind: 'string' },
  // The sentinel form: REDIS_SENTINELS is "host:port,host:port"; passwords stay out of the file.
  { name: 'REDIS_SENTINELS', path: ['redis', 'sentinel', 'sentinels'], kind: 'list' },
  { name: 'REDIS_SENTINEL_MASTER', path: ['redis', 'sentinel', 'masterName'], kind: 'string' },
  { name: 'REDIS_PASSWORD', path: ['redis', 'sentinel', 'password'], kind: 'string' },
  { name: 'REDIS_SENTINEL_PASSWORD', path: ['redis', 'sentinel', 'sentinelPassword'], kind: 'string' },
  { name: 'SPILLWAY_HTTP_PORT', path: ['http', 'port'], kind: 'port' },
  { name: 'SPILLWAY_AGENT_PORT', path: ['agents', 'port'], kind: 'port' },
  { name: 'SPILLWAY_GRPC_PORT', path: ['grpc', 'port'], kind: 'port' },
  { name: 'SPILLWAY_AGENT_TOKEN', path: ['agents', 'token'], kind: 'string' },
  // Lists, comma-separated ("new,old" during a rotation); they replace the file's list.
  { name: 'SPILLWAY_READ_TOKEN', path: ['http', 'tokens', 'read'], kind: 'list' },
  { name: 'SPILLWAY_SUBMIT_TOKEN', path: ['http', 'tokens', 'submit'], kind: 'list' },
  { name: 'SPILLWAY_ADMIN_TOKEN', path: ['http', 'tokens', 'admin'], kind: 'list' },
  { name: 'SPILLWAY_CAS_TOKEN', path: ['cas', 'tokens'], kind: 'list' },
  { name: 'SPILLWAY_CAS_READ_TOKEN', path: ['cas', 'readTokens'], kind: 'list' },
  { name: 'SPILLWAY_HEAP_GROWING_PERCENT', path: ['memory', 'heapGrowingPercent'], kind: 'int' },
];

export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`);
}

/**
 * Validates a raw config object (already parsed from YAML) with the env overrides applied.
 * Collects every problem before failing.
 */
export function parseConfig(raw: unknown, env: Env = process.env, source = 'config'): Config {
  const problems: string[] = [];
  const doc: Record<string, unknown> =
    raw && typeof raw === 'object' && !Array.isArray(raw) ? structuredClone(raw as Record<string, unknown>) : {};
  if (raw !== null && raw !== undefined && (typeof raw !== 'object' || Array.isArray(raw))) {
    problems.push('(top level): expected a mapping of settings');
  }
  // An absent section still gets its own problems reported (e.g. the missing agents.token).
  doc.agents ??= {};
  for (const o of OVERRIDES) {
    const value = env[o.name];
    if (value === undefined || value === '') continue;
    let parsed: string | number | string[] = value;
    if (o.kind === 'list') parsed = value.split(',').map((t) => t.trim()).filter((t) => t !== '');
    if (o.kind === 'port') {
      parsed = Number(value);
      if (!/^\d+$/.test(value) || parsed > 65535) {
        problems.push(`${o.name}: expected a port number (0-65535), got "${value}"`);
        continue;
      }
    }
    if (o.kind === 'int') {
      parsed = Number(value);
      if (!/^\d+$/.test(value)) {
        problems.push(`${o.name}: expected a whole number, got "${value}"`);
        continue;
      }
    }
    setPath(doc, o.path, parsed);
  }
  const result = configSchema.safeParse(doc);
  if (!result.success) problems.push(...formatIssues(result.error.issues));
  if (problems.length > 0 || !result.success) throw new ConfigError(source, problems);
  return deepFreeze(result.data);
}

/** Reads and validates a YAML config file; YAML syntax errors are reported with line numbers. */
export function loadConfigFile(path: string, env: Env = process.env): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read file: ${(err as Error).message}`]);
  }
  return parseConfigText(text, env, path);
}

export function parseConfigText(text: string, env: Env = process.env, source = 'config'): Config {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(source, doc.errors.map((e) => `YAML: ${e.message.split('\n')[0]}`));
  }
  return parseConfig(doc.toJS(), env, source);
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (!next || typeof next !== 'object') node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
