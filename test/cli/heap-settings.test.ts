import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { applyHeapSettings } from '../../src/cli/heap-settings';
import { parseConfig } from '../../src/config';

const base = { agents: { token: 'test-token-0123456789' }, jobTypes: { b2g: {} } };

describe('cli: heap settings (memory.heapGrowingPercent)', () => {
  it('sets V8 heap-growing-percent from the config, 30 unless told otherwise', () => {
    const set: string[] = [];
    applyHeapSettings(parseConfig(base, {}).memory, (f) => set.push(f));
    applyHeapSettings(parseConfig({ ...base, memory: { heapGrowingPercent: 50 } }, {}).memory, (f) => set.push(f));
    applyHeapSettings(parseConfig(base, { SPILLWAY_HEAP_GROWING_PERCENT: '0' }).memory, (f) => set.push(f));
    assert.deepEqual(set, ['--heap-growing-percent=30', '--heap-growing-percent=50', '--heap-growing-percent=0']);
  });

  it('names a flag this node knows (V8 ignores unknown ones without a word)', () => {
    const options = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
    assert.match(options, /^\s*--heap-growing-percent \(/m);
  });

  it('refuses a value that is not a whole percentage, from the file or the environment', () => {
    assert.throws(() => parseConfig({ ...base, memory: { heapGrowingPercent: -1 } }, {}), /memory\.heapGrowingPercent/);
    assert.throws(() => parseConfig({ ...base, memory: { heapGrowingPercent: 12.5 } }, {}), /memory\.heapGrowingPercent/);
    assert.throws(() => parseConfig(base, { SPILLWAY_HEAP_GROWING_PERCENT: 'lots' }), /SPILLWAY_HEAP_GROWING_PERCENT: expected a whole number/);
    assert.throws(() => parseConfig({ ...base, memory: { heapGrowingPercent: 50, extra: 1 } }, {}), /memory/);
  });
});
