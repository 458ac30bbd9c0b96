/**
 * The harness's one seeded uniform source, and the one way it seeds `Math.random`.
 *
 * Seeds for tfjs ops and the pack's layers are derived with the pack's own `mixSeed(seed, ...parts)`,
 * a hash: the seeds of different runs, layers and purposes do not collide, whereas `seed + k` for
 * layer k of run `seed` is `(seed + 1) + (k − 1)`, layer k − 1 of the next run. Plain-JS choices
 * (data splits, epoch orders) draw from {@link mulberry32}.
 *
 * ```ts
 * const random = mulberry32(mixSeed(seed, SEED_PURPOSE.epochOrder));
 * await withSeededMathRandom(mixSeed(seed, SEED_PURPOSE.mathRandom), () => model.fit(xs, ys));
 * ```
 */

/**
 * What a derived seed is for: the first part given to `mixSeed`, so that the seeds of one run used
 * for different purposes are independent streams.
 */
export const SEED_PURPOSE = {
  /** Initial weights (initializers). */
  init: 1,
  /** The pack's stochastic layers (dropout masks). */
  layer: 2,
  /** The order in which an epoch visits the training set. */
  epochOrder: 3,
  /** `Math.random` during training (tfjs's unseeded draws: fit's shuffle, built-in Dropout). */
  mathRandom: 4,
  /** Synthetic data. */
  data: 5,
  /** Monte-Carlo dropout passes. */
  monteCarlo: 6,
} as const;

/**
 * mulberry32, a small 32-bit PRNG (Tommy Ettinger, public domain): returns a function giving
 * uniform numbers in [0, 1). Same seed, same sequence.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher–Yates shuffle in place with the given uniform [0, 1) source; returns `array`. */
export function shuffleInPlace<T>(array: T[], random: () => number): T[] {
  for (let i = array.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [array[i], array[j]] = [array[j], array[i]];
  }
  return array;
}

/**
 * Runs `fn` with `Math.random` replaced by `mulberry32(seed)`, so randomness tfjs draws from it
 * (fit's shuffle, the built-in Dropout's unseeded masks, initializers without a seed) is
 * reproducible too. Restored afterwards, also when `fn` throws.
 */
export async function withSeededMathRandom<T>(seed: number, fn: () => Promise<T>): Promise<T> {
  const original = Math.random;
  Math.random = mulberry32(seed);
  try {
    return await fn();
  } finally {
    Math.random = original;
  }
}
