/**
 * How well a BatchNorm gradient keeps Σ_b ∂L/∂x = 0 per channel (issue 21): the table of the
 * issue, pack against built-in, on whatever backend is active. Imports only tfjs and the harness's
 * browser-safe seeded generator (experiments/lib/random.ts), so the jest tests
 * (__tests__/batch_norm_conditioning.test.ts), `npm run bench` and the browser page
 * (browser/backends.ts, bundled with esbuild) can all run it.
 *
 * Why Σdx = 0: a normalized output does not change when a constant is added to one channel of every
 * sample (μ_B moves with it), so the directional derivative along (1, …, 1) vanishes: Σ_b ∂L/∂x_b = 0.
 * In float32 it can only hold to rounding; the ratio reported is
 *
 *   max over channels c of |Σ_b dx[b, c]| / Σ_b |dx[b, c]|   (sums in float64)
 *
 * which is ~1e-8 when the gradient is well conditioned, and grows with |mean|/std when the backward
 * forms x̂ from a rounded batch mean and then relies on Σx̂ = 0.
 */
import * as tf from '@tensorflow/tfjs';
import { mulberry32 } from '../experiments/lib/random';

/** One row of the table: inputs `center ± spread` per channel. */
export interface ConditioningCase {
  /** Row label as in the issue, e.g. '300 ± 0.1'. */
  label: string;
  /** Typical channel mean; each channel gets its own offset near it (±10 %, or ±spread at 0). */
  center: number;
  /** Standard deviation within a channel. */
  spread: number;
}

/** The rows of issue 21's table. */
export const CONDITIONING_CASES: readonly ConditioningCase[] = [
  { label: '0 ± 1', center: 0, spread: 1 },
  { label: '300 ± 0.1', center: 300, spread: 0.1 },
  { label: '1000 ± 0.01', center: 1000, spread: 0.01 },
  { label: '30000 ± 1', center: 30000, spread: 1 },
];

/**
 * A small seeded uniform [0, 1) generator (the harness's mulberry32): the same numbers on every
 * backend and in every browser.
 */
export const seededUniform: (seed: number) => () => number = mulberry32;

/** Standard normal numbers from {@link seededUniform} (Box–Muller). */
export function seededNormal(seed: number): () => number {
  const u = seededUniform(seed);
  return () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}

/**
 * Inputs of one case, as float64 numbers in row-major order of `shape` (channels on `axis`):
 * channel c holds offset_c + spread·N(0, 1), offset_c = center·(1 + 0.2·(u − 0.5)) (or
 * spread·(u − 0.5) at center 0), so every channel has its own, non-round mean.
 */
export function conditioningValues(
  c: ConditioningCase,
  shape: readonly number[],
  axis: number,
  seed: number,
): number[] {
  const ax = axis < 0 ? axis + shape.length : axis;
  const channels = shape[ax];
  const u = seededUniform(seed);
  const offsets = Array.from({ length: channels }, () =>
    c.center === 0 ? c.spread * (u() - 0.5) : c.center * (1 + 0.2 * (u() - 0.5)),
  );
  const inner = shape.slice(ax + 1).reduce((p, d) => p * d, 1);
  const size = shape.reduce((p, d) => p * d, 1);
  const normal = seededNormal(seed + 1);
  return Array.from(
    { length: size },
    (_, i) => offsets[Math.floor(i / inner) % channels] + c.spread * normal(),
  );
}

/**
 * max over channels of |Σ dx| / Σ |dx|, the sums over every axis but `axis`, in float64.
 * `dx` holds row-major values of a tensor of `shape`.
 */
export function channelSumRatio(
  dx: ArrayLike<number>,
  shape: readonly number[],
  axis: number,
): number {
  const ax = axis < 0 ? axis + shape.length : axis;
  const channels = shape[ax];
  const inner = shape.slice(ax + 1).reduce((p, d) => p * d, 1);
  const sum = new Float64Array(channels);
  const abs = new Float64Array(channels);
  for (let i = 0; i < dx.length; i++) {
    const c = Math.floor(i / inner) % channels;
    sum[c] += dx[i];
    abs[c] += Math.abs(dx[i]);
  }
  let worst = 0;
  for (let c = 0; c < channels; c++)
    if (abs[c] > 0) worst = Math.max(worst, Math.abs(sum[c]) / abs[c]);
  return worst;
}

/**
 * ∂L/∂x of L = Σ y·R (R a fixed seeded N(0, 1) tensor, so dy = R) through `layer` in training mode,
 * on the active backend, as float32 values read back.
 */
export function trainingGradient(
  layer: tf.layers.Layer,
  x: tf.Tensor,
  seed: number,
  kwargs: Record<string, unknown> = {},
): Float32Array {
  const dx = gradientTensor(layer, x, seed, kwargs);
  try {
    return dx.dataSync() as Float32Array;
  } finally {
    dx.dispose();
  }
}

/** {@link trainingGradient} read with `await data()`: no synchronous read (webgl, webgpu). */
export async function trainingGradientAsync(
  layer: tf.layers.Layer,
  x: tf.Tensor,
  seed: number,
  kwargs: Record<string, unknown> = {},
): Promise<Float32Array> {
  const dx = gradientTensor(layer, x, seed, kwargs);
  try {
    return (await dx.data()) as Float32Array;
  } finally {
    dx.dispose();
  }
}

function gradientTensor(
  layer: tf.layers.Layer,
  x: tf.Tensor,
  seed: number,
  kwargs: Record<string, unknown>,
): tf.Tensor {
  return tf.tidy(() => {
    const normal = seededNormal(seed);
    const r = tf.tensor(Array.from({ length: x.size }, normal), x.shape);
    const f = (t: tf.Tensor) =>
      tf.sum(tf.mul(layer.apply(t, { training: true, ...kwargs }) as tf.Tensor, r));
    return tf.grad(f)(x);
  });
}

/** One measured row: the ratio for the pack's layer and for the built-in. */
export interface ConditioningRow {
  label: string;
  pack: number;
  builtin: number;
}

/** Options of {@link conditioningTable}. */
export interface ConditioningTableOptions {
  /** Input shape, channels last (default [64, 16]). */
  shape?: number[];
  /** Seed of the inputs and of dy (default 21). */
  seed?: number;
  /** Rows (default {@link CONDITIONING_CASES}). */
  cases?: readonly ConditioningCase[];
}

/**
 * Issue 21's table on the active backend: for each case, the ratio of {@link channelSumRatio} for
 * a fresh pack layer (`makePack()`, e.g. `() => dn.layers.batchNorm()`) and for
 * `tf.layers.batchNormalization()` on the same input and dy. The pack is passed in so this file
 * does not import it.
 */
export function conditioningTable(
  makePack: () => tf.layers.Layer,
  options: ConditioningTableOptions = {},
): ConditioningRow[] {
  const { shape = [64, 16], seed = 21, cases = CONDITIONING_CASES } = options;
  return cases.map((c, i) => {
    const x = tf.tensor(conditioningValues(c, shape, -1, seed + 10 * i), shape);
    try {
      const ratio = (layer: tf.layers.Layer) =>
        channelSumRatio(trainingGradient(layer, x, seed + 10 * i + 5), shape, -1);
      return {
        label: c.label,
        pack: ratio(makePack()),
        builtin: ratio(tf.layers.batchNormalization()),
      };
    } finally {
      x.dispose();
    }
  });
}

/** {@link conditioningTable} with asynchronous reads only (for webgl and webgpu pages). */
export async function conditioningTableAsync(
  makePack: () => tf.layers.Layer,
  options: ConditioningTableOptions = {},
): Promise<ConditioningRow[]> {
  const { shape = [64, 16], seed = 21, cases = CONDITIONING_CASES } = options;
  const rows: ConditioningRow[] = [];
  for (const [i, c] of cases.entries()) {
    const x = tf.tensor(conditioningValues(c, shape, -1, seed + 10 * i), shape);
    try {
      const ratio = async (layer: tf.layers.Layer) =>
        channelSumRatio(await trainingGradientAsync(layer, x, seed + 10 * i + 5), shape, -1);
      const pack = await ratio(makePack());
      rows.push({ label: c.label, pack, builtin: await ratio(tf.layers.batchNormalization()) });
    } finally {
      x.dispose();
    }
  }
  return rows;
}
