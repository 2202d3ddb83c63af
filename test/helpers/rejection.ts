import { strict as assert } from 'node:assert';

/**
 * The error `p` rejects with, checked to be a `type`, for tests that go on to assert its fields
 * (code, disposition, status); fails the test if `p` resolves or rejects with anything else.
 */
export async function rejection<E extends Error>(p: Promise<unknown>, type: abstract new (...args: never[]) => E): Promise<E> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof type, `expected a ${type.name}, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}
