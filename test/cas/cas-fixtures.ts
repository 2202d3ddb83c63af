import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLogger, type LogEntry, type Logger } from '../../src/lib';

/** A fresh directory under the OS temp dir, removed by the returned cleanup. */
export async function tempRoot(label = 'cas'): Promise<{ root: string; cleanup: () => Promise<void> }> {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), `spillway-${label}-`));
  return { root, cleanup: () => fsp.rm(root, { recursive: true, force: true }) };
}

/** A silent logger that records every entry for assertions. */
export function recordingLogger(): { log: Logger; entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  return { log: createLogger({ silent: true, sink: (e) => entries.push(e) }), entries };
}

export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return Buffer.concat(chunks);
}
