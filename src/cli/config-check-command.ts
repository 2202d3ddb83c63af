import { stringify } from 'yaml';
import { loadConfigFile, type Env } from '../config';
import { CliUsageError } from './master-client';
import { overflowReport, parseBacklog, redactConfig, type BacklogSpec } from './config-report';

export interface ConfigCheckFlags {
  /** `b2g=12,linux64=0` (TYPE=COUNT[:OLDEST_WAIT_SEC], comma-separated). */
  backlog?: string;
}

/**
 * `spillway config check FILE`: validates the file offline (no Redis, no AWS) with the
 * environment overrides the master would apply, prints the effective config with defaults
 * filled in and secrets redacted, and what each job type's overflow would do for a backlog.
 * An invalid config throws the ConfigError with every problem (exit 2).
 */
export function configCheckCommand(file: string, flags: ConfigCheckFlags, env: Env, out: NodeJS.WritableStream): number {
  const config = loadConfigFile(file, env);
  const types = Object.keys(config.jobTypes);
  let backlog: BacklogSpec = new Map();
  if (flags.backlog !== undefined) {
    const parsed = parseBacklog(flags.backlog, types);
    if ('problems' in parsed) throw new CliUsageError(parsed.problems.join('; '));
    backlog = parsed.backlog;
  }
  const report = overflowReport(config, backlog);
  const width = Math.max(...types.map((t) => t.length));
  const given = [...backlog].map(([t, b]) => `${t}=${b.waiting}${b.oldestWaitSec === null ? '' : `:${b.oldestWaitSec}`}`);
  out.write(
    [
      `spillway config check: ${file} is valid`,
      '',
      '# The effective configuration: defaults filled in, environment overrides applied, secrets redacted.',
      stringify(redactConfig(config)).trimEnd(),
      '',
      `# Overflow for the backlog ${given.length ? given.join(', ') : '(none given: nothing waiting)'} (oldest wait 0 s unless given as TYPE=COUNT:SEC),`,
      '# as at a first start: no on-prem executor idle, EC2 pools without instances, local pools with their',
      '# preCreated instances suspended.',
      ...report.types.map((t) => `${t.type.padEnd(width)}  ${String(t.waiting).padStart(4)} waiting  ${t.pool ? `-> ${t.pool}: ` : ''}${t.reason}`),
      ...report.pools.map((p) => `pool ${p.pool}: ${p.reason}`),
      '',
    ].join('\n'),
  );
  return 0;
}
