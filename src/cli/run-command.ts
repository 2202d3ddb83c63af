import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { buildTree, CasClient, type ActionResult, type UploadItem } from '../cas';
import { systemClock } from '../lib';
import { actionDigestOf } from '../protocol';
import { followJob } from './job-follow';
import { CliUsageError, MasterClient } from './master-client';
import { DEFAULT_WAIT_TIMEOUT_SEC } from './submit-command';

export interface RunFlags {
  master: string;
  /** Submit or admin token of the API (--token / SPILLWAY_TOKEN); the cache has its own. */
  token?: string;
  inputs: string;
  output?: string[];
  outputDir?: string[];
  type: string;
  env?: string[];
  timeout?: number;
  /** Path prefix of the master's CAS routes (its `cas.prefix`). */
  casPrefix?: string;
  casToken?: string;
}

/**
 * `spillway run`: uploads the input tree's missing blobs, runs the command as a cached action
 * (or takes its result from the action cache when the same action already ran), downloads the
 * declared outputs into place under --inputs, and resolves to the action's exit code.
 */
export async function runCommand(command: string[], flags: RunFlags, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  if (command.length === 0) throw new CliUsageError('nothing to run: put the command after "--"');
  const api = new MasterClient(flags.master, flags.token);
  const cas = new CasClient({ baseUrl: flags.master.replace(/\/+$/, '') + (flags.casPrefix ?? ''), ...(flags.casToken && { token: flags.casToken }) });
  const inputs = resolve(flags.inputs);
  const env: Record<string, string> = {};
  for (const kv of flags.env ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new CliUsageError(`--env expects NAME=VALUE, got "${kv}"`);
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }

  const tree = await buildTree(inputs);
  const items: UploadItem[] = [...tree.directories].map(([hash, data]) => ({ digest: { hash, size: data.length }, data }));
  for (const [hash, path] of tree.files) items.push({ digest: { hash, size: (await stat(path)).size }, path });
  const sent = await cas.uploadMissing(items);
  err.write(`spillway: inputs ${tree.root.hash.slice(0, 12)}: ${items.length} blob(s), ${sent.length} uploaded\n`);

  const outputFiles = flags.output ?? [];
  const outputDirs = flags.outputDir ?? [];
  const action = actionDigestOf({
    argv: command,
    env,
    cwd: undefined,
    inputRoot: tree.root,
    outputFiles,
    outputDirs,
    timeoutSec: flags.timeout,
    resources: undefined,
  });

  let result = await cas.getActionResult(action.hash);
  if (result) {
    err.write(`spillway: action ${action.hash.slice(0, 12)} served from the action cache: no agent ran it\n`);
    await printOutput(cas, result, out, err);
  } else {
    const created = await api.post<{ id: string; type: string }>('/api/jobs', {
      type: flags.type,
      argv: command,
      ...(Object.keys(env).length && { env }),
      ...(flags.timeout && { timeoutSec: flags.timeout }),
      action: { inputRoot: tree.root, outputFiles, outputDirs },
    });
    err.write(`spillway: action ${action.hash.slice(0, 12)} not cached; queued ${created.type} job ${created.id}\n`);
    const end = await followJob(api, created, out, err, { clock: systemClock, waitTimeoutMs: DEFAULT_WAIT_TIMEOUT_SEC * 1000 });
    result = await cas.getActionResult(action.hash);
    if (!result) return end.code;
  }
  for (const f of result.outputFiles) {
    const dest = resolve(inputs, f.path);
    await mkdir(dirname(dest), { recursive: true });
    if (!(await cas.downloadToFile(f.digest, dest, { mode: f.mode }))) throw new Error(`output ${f.path} is missing from the CAS`);
  }
  if (result.outputFiles.length) err.write(`spillway: ${result.outputFiles.length} output(s) written under ${inputs}\n`);
  return result.exitCode;
}

async function printOutput(cas: CasClient, r: ActionResult, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<void> {
  const [stdout, stderr] = await Promise.all([cas.getBlob(r.stdout), cas.getBlob(r.stderr)]);
  if (stdout) out.write(stdout);
  if (stderr) err.write(stderr);
}
