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
