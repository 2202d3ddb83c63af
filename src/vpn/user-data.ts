/** What the cloud-init template's `{{name}}` placeholders are filled with. */
export type UserDataValues = {
  peerName: string;
  /** The peer's wg-quick config, written to /etc/wireguard on the instance. */
  wireguardConfig: string;
  masterUrl: string;
  agentToken: string;
  jobTypes: string;
  executors: string;
};

/**
 * The user-data template with the agent's systemd unit (deploy/spillway-agent.service, the one
 * on-prem agents run) put in place of its `{{agentUnit}}`, so a cloud instance runs exactly that
 * unit. The unit's own `${VAR}` and `%d` are systemd's and pass through untouched.
 */
export function withAgentUnit(template: string, agentUnit: string): string {
  if (!template.includes('{{agentUnit}}')) throw new Error('user-data template: no {{agentUnit}} placeholder for the agent unit');
  if (/\{\{\w+\}\}/.test(agentUnit)) throw new Error('the agent unit must not contain {{placeholders}}');
  return template
    .split('\n')
    .map((line) => {
      const at = line.indexOf('{{agentUnit}}');
      if (at < 0) return line;
      const indent = line.slice(0, at);
      return agentUnit.replace(/\n$/, '').split('\n').map((l) => (l === '' ? '' : indent + l)).join('\n');
    })
    .join('\n');
}

/**
 * Fills the template's `{{name}}` placeholders. A multi-line value keeps the indentation of
 * the line its placeholder stands on, so it lands inside a YAML block scalar intact; an
 * unknown placeholder is an error here rather than a broken instance at boot.
 */
export function renderUserData(template: string, values: UserDataValues): string {
  const known: Record<string, string> = values;
  return template
    .split('\n')
    .map((line) => {
      const indent = /^[ \t]*/.exec(line)![0];
      return line.replace(/\{\{(\w+)\}\}/g, (_m, name: string) => {
        const value = known[name];
        if (value === undefined) throw new Error(`user-data template: unknown placeholder {{${name}}}`);
        return value.replace(/\n$/, '').split('\n').join(`\n${indent}`);
      });
    })
    .join('\n');
}
