/**
 * A small seeded PRNG (mulberry32): the same seed gives the same sequence, so a randomized
 * test that fails can be replayed exactly from the seed it printed.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed from `env[name]` when set (a replay), else a fresh one. */
export function seedFrom(name: string): number {
  const given = process.env[name];
  if (given !== undefined && given !== '') {
    const n = Number(given);
    if (!Number.isInteger(n)) throw new Error(`${name}=${given}: expected an integer seed`);
    return n >>> 0;
  }
  return Math.floor(Math.random() * 2 ** 32);
}
