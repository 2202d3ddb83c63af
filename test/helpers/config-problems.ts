import assert from 'node:assert/strict';
import { ConfigError } from '../../src/lib';

/** The problems a config parse reports; fails the test if it does not throw a ConfigError. */
export function configProblems(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}
