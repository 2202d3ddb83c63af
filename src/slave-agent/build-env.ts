const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const SECRET_VARIABLES: ReadonlySet<string> = new Set(['SPILLWAY_AGENT_TOKEN', 'SPILLWAY_CAS_TOKEN']);

/**
 * The environment every build starts from: `base` (the agent's own, or a default PATH)
 * without the agent's credentials, whatever variable holds them. A token that is part of a
 * longer value (a URL with credentials) is caught too; very short ones would match by chance.
 */
export function buildBaseEnv(base: Record<string, string> | undefined, secrets: ReadonlyArray<string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(base ?? { PATH: DEFAULT_PATH })) {
    if (SECRET_VARIABLES.has(k) || secrets.some((t) => t !== undefined && (v === t || (t.length >= 8 && v.includes(t))))) continue;
    out[k] = v;
  }
  return out;
}
