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
    // Presentation reads the master through its view interface (master's index, below) and
    // names the provisioner's report shapes, nothing more of it.
    layer('http', ['config', 'protocol', 'master', 'cas', 'provisioner']),
    {
      name: 'http-provisioner-types-only',
      comment: 'src/http/ may name the provisioner\'s types (pool reports, instance records), not run its code',
      severity: 'error',
      from: { path: '^src/http/' },
      to: { path: '^src/provisioner/', dependencyTypesNot: ['type-only'] },
    },
    layer('remote-execution', ['config', 'protocol', 'master', 'cas']),
    // The simulator drives the provisioner's and the master's own decision code (their index only).
    layer('simulator', ['config', 'protocol', 'provisioner', 'master']),
    layer('cli', ['config', 'protocol', 'queue-monitor', 'provisioner', 'master', 'http', 'remote-execution', 'slave-agent', 'executor', 'cas', 'vpn', 'simulator']),
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
