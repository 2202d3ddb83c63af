import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { nodeVersionProblem } from '../../src/cli/node-version';

describe('cli: the Node.js version check at start', () => {
  it('compares major, minor and patch with the >=X.Y.Z bound', () => {
    const cases: Array<[string, string, boolean]> = [
      ['20.19.0', '>=20.19.0', true],
      ['v20.19.1', '>=20.19.0', true],
      ['20.20.2', '>=20.19.0', true],
      ['22.0.0', '>=20.19.0', true],
      ['20.18.3', '>=20.19.0', false],
      ['20.9.0', '>=20.19.0', false],
      ['18.20.4', '>=20.19.0', false],
      ['v20.19.0-nightly2025', '>= 20.19.0', true],
    ];
    for (const [running, range, ok] of cases) assert.equal(nodeVersionProblem(running, range) === undefined, ok, `${running} ${range}`);
    assert.equal(nodeVersionProblem('18.20.4', '>=20.19.0'), "Node.js 20.19.0 or later is required, this is 18.20.4 (see the README's Quick start)");
    assert.match(nodeVersionProblem('20.0.0', '^20')!, /not a ">=X\.Y\.Z" bound/);
  });

  it('the bound is package.json engines.node, the one the README states, and this Node meets it', () => {
    const root = join(__dirname, '..', '..', '..');
    const engines = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    assert.equal(engines, '>=20.19.0');
    assert.ok(readFileSync(join(root, 'README.md'), 'utf8').includes('Needs Node.js 20.19 or later'), "the README's Quick start states the bound");
    assert.equal(nodeVersionProblem(process.versions.node, engines), undefined);
  });
});
