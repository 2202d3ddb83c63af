import { isDigest, type Digest } from './digest';

/** One output file of an action, relative to the action's working directory. */
export interface OutputFile {
  path: string;
  digest: Digest;
  /** Unix permission bits (0o644, 0o755...). */
  mode: number;
}

/** An output that is a symlink, kept as a link (REAPI results only). */
export interface OutputSymlink {
  /** Relative to the action's working directory, like {@link OutputFile.path}. */
  path: string;
  /** The link's target text: relative, never climbing out of the work directory. */
  target: string;
}

/** Why the outputs of a run were refused, for callers that map it onto a status (REAPI: `symlink-target` is FAILED_PRECONDITION). */
export type OutputRefusalCode = 'escapes' | 'symlink-target' | 'not-regular';

/** When the action ran, as epoch milliseconds from the executing agent's clock. */
export interface ActionTimings {
  queuedAt?: number;
  startedAt: number;
  finishedAt: number;
}

/**
 * What running an action produced. Stored in the action cache under the action's digest;
 * every digest it names must be present in the CAS for the result to be served.
 */
export interface ActionResult {
  exitCode: number;
  stdout: Digest;
  stderr: Digest;
  outputFiles: OutputFile[];
  /** Outputs that are symlinks (REAPI results; spillway's own store regular files only). */
  outputSymlinks?: OutputSymlink[];
  /**
   * Every directory of the declared output directories, each one and everything below it, so
   * that an empty one is reported too (REAPI results).
   */
  outputDirectories?: string[];
  /** Set with `outcome` when the outputs were refused. */
  refused?: OutputRefusalCode;
  /** Name of the agent that ran the action. */
  agent?: string;
  timings: ActionTimings;
  /** Why the result is not a plain exit, in words (e.g. an output rejected, "timed out after 60s"). */
  outcome?: string;
}

/** Tag written into every stored result so readers can tell ours from opaque values. */
const ACTION_RESULT_KIND = 'spillway.action-result/v1';

const REFUSALS: readonly OutputRefusalCode[] = ['escapes', 'symlink-target', 'not-regular'];

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const isTime = (v: unknown): v is number => isInt(v) && v >= 0;

/**
 * Validates an untrusted value as an ActionResult; returns a clean copy or undefined. Used by
 * the HTTP layer to decide whether an `/ac/` PUT is ours or an opaque client value, so it is
 * strict: output paths must be relative and must not climb out with `..`.
 */
export function parseActionResult(value: unknown): ActionResult | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  if (v['kind'] !== undefined && v['kind'] !== ACTION_RESULT_KIND) return undefined;
  if (!isInt(v['exitCode']) || !isDigest(v['stdout']) || !isDigest(v['stderr'])) return undefined;
  if (!Array.isArray(v['outputFiles'])) return undefined;
  const outputFiles: OutputFile[] = [];
  for (const f of v['outputFiles'] as unknown[]) {
    if (f === null || typeof f !== 'object') return undefined;
    const o = f as Record<string, unknown>;
    if (typeof o['path'] !== 'string' || !isSafeRelativePath(o['path'])) return undefined;
    if (!isDigest(o['digest']) || !isInt(o['mode']) || o['mode'] < 0 || o['mode'] > 0o7777) return undefined;
    outputFiles.push({ path: o['path'], digest: pick(o['digest']), mode: o['mode'] });
  }
  const outputSymlinks: OutputSymlink[] = [];
  if (v['outputSymlinks'] !== undefined) {
    if (!Array.isArray(v['outputSymlinks'])) return undefined;
    for (const l of v['outputSymlinks'] as unknown[]) {
      if (l === null || typeof l !== 'object') return undefined;
      const o = l as Record<string, unknown>;
      if (typeof o['path'] !== 'string' || !isSafeRelativePath(o['path'])) return undefined;
      if (typeof o['target'] !== 'string' || o['target'] === '' || o['target'].includes('\0')) return undefined;
      outputSymlinks.push({ path: o['path'], target: o['target'] });
    }
  }
  const dirs = v['outputDirectories'];
  if (dirs !== undefined && (!Array.isArray(dirs) || !dirs.every((d) => typeof d === 'string' && isSafeRelativePath(d)))) return undefined;
  if (v['refused'] !== undefined && !REFUSALS.includes(v['refused'] as OutputRefusalCode)) return undefined;
  const t = v['timings'] as Record<string, unknown> | null | undefined;
  if (!t || typeof t !== 'object' || !isTime(t['startedAt']) || !isTime(t['finishedAt'])) return undefined;
  if (t['queuedAt'] !== undefined && !isTime(t['queuedAt'])) return undefined;
  if (v['agent'] !== undefined && typeof v['agent'] !== 'string') return undefined;
  if (v['outcome'] !== undefined && typeof v['outcome'] !== 'string') return undefined;
  const result: ActionResult = {
    exitCode: v['exitCode'],
    stdout: pick(v['stdout']),
    stderr: pick(v['stderr']),
    outputFiles,
    timings: {
      ...(t['queuedAt'] !== undefined ? { queuedAt: t['queuedAt'] as number } : {}),
      startedAt: t['startedAt'],
      finishedAt: t['finishedAt'],
    },
  };
  if (v['outputSymlinks'] !== undefined) result.outputSymlinks = outputSymlinks;
  if (dirs !== undefined) result.outputDirectories = [...(dirs as string[])];
  if (v['refused'] !== undefined) result.refused = v['refused'] as OutputRefusalCode;
  if (typeof v['agent'] === 'string') result.agent = v['agent'];
  if (typeof v['outcome'] === 'string') result.outcome = v['outcome'];
  return result;
}

/** Parses bytes as an ActionResult document; undefined for anything else (binary, other JSON). */
export function parseActionResultBytes(bytes: Buffer): ActionResult | undefined {
  // Cheap reject of protobuf and ccache payloads before JSON.parse sees them.
  if (bytes.length === 0 || bytes.length > 16 * 1024 * 1024 || bytes[0] !== 0x7b /* { */) return undefined;
  try {
    return parseActionResult(JSON.parse(bytes.toString('utf8')));
  } catch {
    return undefined;
  }
}

/**
 * Parses an `/ac/` upload as one of spillway's own results: only a document tagged with our
 * `kind` (which {@link serializeActionResult} always writes). Any other value, even JSON with
 * exactly our fields, belongs to the client and is kept byte for byte.
 */
export function parseOwnActionResultBytes(bytes: Buffer): ActionResult | undefined {
  // The tag is checked on the parsed object below; this only skips JSON.parse for the rest.
  if (!bytes.includes(ACTION_RESULT_KIND)) return undefined;
  try {
    const value = JSON.parse(bytes.toString('utf8')) as unknown;
    if (value === null || typeof value !== 'object' || (value as Record<string, unknown>)['kind'] !== ACTION_RESULT_KIND) return undefined;
    return parseActionResult(value);
  } catch {
    return undefined;
  }
}

/** The stored JSON form. */
export function serializeActionResult(result: ActionResult): Buffer {
  return Buffer.from(JSON.stringify({ kind: ACTION_RESULT_KIND, ...result }));
}

/** Every blob a result references (stdout, stderr, outputs). */
export function referencedDigests(result: ActionResult): Digest[] {
  return [result.stdout, result.stderr, ...result.outputFiles.map((f) => f.digest)];
}

function isSafeRelativePath(p: string): boolean {
  if (p === '' || p.startsWith('/') || p.includes('\0') || p.includes('\\')) return false;
  return p.split('/').every((seg) => seg !== '..' && seg !== '');
}

function pick(d: unknown): Digest {
  const { hash, size } = d as Digest;
  return { hash, size };
}
