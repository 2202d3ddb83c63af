import { execFile } from 'node:child_process';

/** What a hub command's `{name}` placeholders are filled with. */
export interface HubCommandValues {
  publicKey: string;
  address: string;
  /** The peer's address as a host network: 10.77.0.9/32 (or /128). */
  allowedIps: string;
  pool: string;
  /** The instance id, '' while the instance does not exist yet. */
  instanceId: string;
}

/** Runs one argv (never through a shell) and says how it ended. */
export type HubCommandRunner = (argv: readonly string[], o: { timeoutMs: number }) => Promise<{ exitCode: number | null; stderr: string }>;

/**
 * Fills the placeholders of an argv template, each argument on its own: a value can never
 * become a second argument or an option, whatever it contains.
 */
export function renderHubCommand(template: readonly string[], values: HubCommandValues): string[] {
  const known: Record<string, string> = { ...values };
  return template.map((arg) =>
    arg.replace(/\{(\w*)\}/g, (_m, name: string) => {
      const v = known[name];
      if (v === undefined) throw new Error(`hub command: unknown placeholder {${name}}`);
      return v;
    }),
  );
}

/** The real runner: execFile (no shell), bounded by the timeout, stderr kept short for the log. */
export const runHubCommand: HubCommandRunner = (argv, o) =>
  new Promise((resolve) => {
    const [file, ...args] = argv;
    execFile(file!, args, { timeout: o.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 20 }, (err, _stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
      resolve({ exitCode: code, stderr: `${String(stderr).slice(0, 2000)}${err && code === null ? ` (${err.message})` : ''}` });
    });
  });
