/**
 * Seeded randomness for the pack's stochastic layers.
 *
 * A tfjs random op given the same seed draws the same numbers (`tf.randomUniform(shape, 0, 1,
 * 'float32', seed)` runs the alea generator seeded with `String(seed)`), so a layer that passes its
 * one seed to every call draws the same mask at every training step: `tf.layers.dropout({seed})`
 * does exactly that in tfjs 4.22. Dropout needs a new mask per step. A {@link SeedStream} turns one
 * seed into a reproducible *sequence* of per-call seeds:
 *
 *   call 0 → seed itself (so the first mask equals the built-in's for the same seed),
 *   call k → mixSeed(seed, k) for k ≥ 1.
 *
 * Without a seed every call returns `undefined`, and tfjs seeds each draw from `Math.random()`.
 */

/** 32-bit finalizer of MurmurHash3 (fmix32): a bijection on uint32 with full avalanche. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a hash of a string (any seed, integer or not, is hashed by its decimal text). */
function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A seed derived from `seed` and the integers `parts` (call index, layer index, a tag…): a uint32,
 * deterministic, and different for different parts with overwhelming probability.
 */
export function mixSeed(seed: number, ...parts: number[]): number {
  let h = hashString(String(seed));
  for (const p of parts) h = fmix32(h ^ fmix32((p >>> 0) + 0x9e3779b9));
  return h;
}

/**
 * A reproducible sequence of per-call seeds. `next()` returns the seed of the current call and
 * advances; two streams with the same seed return the same sequence; an unseeded stream returns
 * `undefined` (fresh randomness from tfjs) forever.
 */
export class SeedStream {
  /** The seed the sequence is derived from, or undefined for an unseeded stream. */
  readonly seed: number | undefined;
  private calls = 0;

  constructor(seed?: number | null) {
    this.seed = seed ?? undefined;
  }

  /** The seed of call `k` (0-based): the seed itself for k = 0, `mixSeed(seed, k)` after. */
  seedAt(k: number): number | undefined {
    if (this.seed === undefined) return undefined;
    return k === 0 ? this.seed : mixSeed(this.seed, k);
  }

  /** The seed of the current call; advances the stream. */
  next(): number | undefined {
    return this.seedAt(this.calls++);
  }

  /** How many seeds have been drawn. */
  get position(): number {
    return this.calls;
  }

  /** Restarts the sequence at call 0. */
  reset(): void {
    this.calls = 0;
  }
}
