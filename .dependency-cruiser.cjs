// The import rules of DESIGN.md: arrows only point down the table, no cycles, and nobody
// reaches into another folder's internals (only its index.ts).
const layer = (from, allowed) => ({
  name: `${from}-imports`,
  comment: `src/${from}/ may import only: ${allowed.join(', ') || 'lib'}`,
  severity: 'error',
  from: { path: `^src/${from}/` },
  to: {
    path: '^src/([^/]+)/',
    pathNot: [`^src/(${[from, 'lib', ...allowed].join('|')})/`],
  },
});

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
    layer('lib', []),
    layer('config', []),
    layer('protocol', []),
    layer('cas', []),
    layer('vpn', []),
    layer('executor', ['cas']),
    layer('queue-monitor', ['config', 'protocol']),
    layer('provisioner', ['config', 'protocol']),
    layer('slave-agent', ['config', 'protocol', 'executor', 'cas']),
    layer('master', ['config', 'protocol', 'queue-monitor', 'provisioner', 'cas']),
    layer('cli', ['config', 'protocol', 'queue-monitor', 'provisioner', 'master', 'slave-agent', 'executor', 'cas', 'vpn']),
    {
      name: 'only-through-index',
      comment: "another folder's public surface is its index.ts",
      severity: 'error',
      from: { path: '^src/([^/]+)/' },
      to: { path: '^src/([^/]+)/.+', pathNot: ['^src/$1/', '^src/[^/]+/index\\.ts$'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
