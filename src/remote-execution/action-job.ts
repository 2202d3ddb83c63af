import type { Config } from '../config';
import { checkJobPayload, type JobPayload, type Requirements } from '../protocol';
import type { Action__Output, Command__Output, Platform__Output } from './reapi-types';

/** A digest as REAPI messages carry it. */
export interface WireDigest {
  hash: string;
  sizeBytes: number;
}

/** One problem with the request, as a google.rpc.BadRequest field violation. */
export interface Violation {
  field: string;
  description: string;
}

export type ActionJob =
  | { ok: true; type: string; payload: JobPayload; doNotCache: boolean }
  | { ok: false; violations: Violation[] };

/**
 * The platform properties a remote action may name, and what they become: the same job
 * requirements any job has, so the dispatcher places remote actions like every other job.
 * `OSFamily` and `ISA` use the names Bazel's and Buildbarn's platforms use.
 */
export const PLATFORM_PROPERTIES = ['OSFamily', 'ISA', 'cpus', 'memoryMb', 'label', 'labels', 'pool'] as const;

const OS: Readonly<Record<string, string>> = { linux: 'linux', macos: 'darwin', darwin: 'darwin', windows: 'win32', freebsd: 'freebsd' };
const ISA: Readonly<Record<string, string>> = { 'x86-64': 'x64', x86_64: 'x64', amd64: 'x64', x64: 'x64', aarch64: 'arm64', arm64: 'arm64' };

/** The job type of an instance name: the configured one, else the default; undefined if neither. */
export function jobTypeOf(config: Config, instanceName: string): string | undefined {
  const re = config.remoteExecution;
  return Object.hasOwn(re.instances, instanceName) ? re.instances[instanceName] : re.defaultJobType;
}

/** Platform properties as job requirements; every unknown name or bad value is a violation. */
export function requirementsOf(platform: Platform__Output | null, field: string): { requirements: Requirements; violations: Violation[] } {
  const req: Requirements = {};
  const violations: Violation[] = [];
  const labels: string[] = [];
  const bad = (i: number, description: string) => violations.push({ field: `${field}.properties[${i}]`, description });
  (platform?.properties ?? []).forEach((p, i) => {
    const value = p.value.trim();
    const int = /^[1-9][0-9]{0,6}$/.test(value) ? Number(value) : undefined;
    switch (p.name) {
      case 'OSFamily': {
        const os = OS[value.toLowerCase()];
        if (os) req.os = os;
        else bad(i, `unknown OSFamily "${p.value}" (known: ${Object.keys(OS).join(', ')})`);
        break;
      }
      case 'ISA': {
        const arch = ISA[value.toLowerCase()];
        if (arch) req.arch = arch;
        else bad(i, `unknown ISA "${p.value}" (known: ${Object.keys(ISA).join(', ')})`);
        break;
      }
      case 'cpus':
        if (int !== undefined) req.cpus = int;
        else bad(i, `cpus must be a positive integer, not "${p.value}"`);
        break;
      case 'memoryMb':
        if (int !== undefined) req.memoryMb = int;
        else bad(i, `memoryMb must be a positive integer (MiB), not "${p.value}"`);
        break;
      case 'label':
      case 'labels':
        labels.push(...value.split(',').map((l) => l.trim()).filter((l) => l !== ''));
        break;
      case 'pool':
        if (value) req.pool = value;
        else bad(i, 'pool must not be empty');
        break;
      default:
        bad(i, `unsupported platform property "${p.name}" (supported: ${PLATFORM_PROPERTIES.join(', ')})`);
    }
  });
  if (labels.length) req.labels = [...new Set(labels)];
  return { requirements: req, violations };
}

/**
 * What a REAPI Action and its Command become: a job of the instance's job type whose payload
 * runs the command on the input root (see protocol's remoteActionSchema). The payload goes
 * through the same schema as every producer's job, so its problems (an `=` in an env name, an
 * output path with `..`) come back as violations, never as a job that fails on an agent.
 */
export function actionJob(config: Config, instanceName: string, actionDigest: WireDigest, action: Action__Output, command: Command__Output): ActionJob {
  const violations: Violation[] = [];
  const type = jobTypeOf(config, instanceName);
  if (type === undefined) {
    violations.push({ field: 'instance_name', description: `instance "${instanceName}" maps to no job type (remoteExecution.instances, remoteExecution.defaultJobType)` });
  }
  if (!action.inputRootDigest) violations.push({ field: 'action.input_root_digest', description: 'required' });
  if (command.arguments.length === 0) violations.push({ field: 'command.arguments', description: 'at least the program is required' });
  const env: Record<string, string> = {};
  for (const v of command.environmentVariables) {
    if (Object.hasOwn(env, v.name)) violations.push({ field: 'command.environment_variables', description: `${JSON.stringify(v.name)} is set twice` });
    env[v.name] = v.value;
  }
  // The Action's platform is the one REAPI v2.2 keys on; the Command's is the older place.
  const platform = action.platform?.properties.length ? action.platform : command.platform;
  const { requirements, violations: platformViolations } = requirementsOf(platform, action.platform?.properties.length ? 'action.platform' : 'command.platform');
  violations.push(...platformViolations);
  const timeout = action.timeout ? Number(action.timeout.seconds) + action.timeout.nanos / 1e9 : 0;
  if (!(timeout >= 0)) violations.push({ field: 'action.timeout', description: 'must not be negative' });
  if (violations.length > 0 || type === undefined || !action.inputRootDigest) return { ok: false, violations };

  // REAPI v2.1: with output_paths set, output_files and output_directories are ignored.
  const usePaths = command.outputPaths.length > 0;
  const data = {
    argv: command.arguments,
    env,
    ...(command.workingDirectory !== '' && { cwd: command.workingDirectory }),
    ...(timeout > 0 && { timeoutSec: Math.ceil(timeout) }),
    ...(Object.keys(requirements).length > 0 && { requirements }),
    remoteAction: {
      actionDigest: { hash: actionDigest.hash, size: actionDigest.sizeBytes },
      inputRoot: { hash: action.inputRootDigest.hash, size: action.inputRootDigest.sizeBytes },
      outputFiles: usePaths ? [] : command.outputFiles,
      outputDirs: usePaths ? [] : command.outputDirectories,
      outputPaths: command.outputPaths,
    },
  };
  const check = checkJobPayload(data, type);
  if (!check.ok) return { ok: false, violations: [{ field: 'action', description: check.reason }] };
  return { ok: true, type, payload: check.payload, doNotCache: action.doNotCache };
}
