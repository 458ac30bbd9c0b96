/** Helpers shared by the BatchNorm tests. */
import * as tf from '@tensorflow/tfjs';

/**
 * Sets non-trivial gamma/beta/moving (and renorm) statistics on a built layer (seeded); counts
 * (num_batches_tracked, renorm_steps) start at 0.
 */
export function randomizeWeights(layer: tf.layers.Layer, seed: number): void {
  const ws = layer.getWeights().map((w, i) => {
    const name = layer.weights[i].originalName;
    if (name.endsWith('moving_variance') || name.endsWith('renorm_variance'))
      return tf.randomUniform(w.shape, 0.5, 2, 'float32', seed + i);
    if (name.endsWith('num_batches_tracked') || name.endsWith('renorm_steps'))
      return tf.zeros(w.shape);
    return tf.randomNormal(w.shape, name.endsWith('gamma') ? 1 : 0, 0.5, 'float32', seed + i);
  });
  layer.setWeights(ws);
}

/** Copies of a layer's weights (getWeights returns the live variables, which later calls update). */
export function snapshot(layer: tf.layers.Layer): tf.Tensor[] {
  return layer.getWeights().map((w) => tf.tensor(w.dataSync().slice(), w.shape));
}

/** The layer's weight whose name ends with `name` (e.g. 'moving_mean'), as plain numbers. */
export function weightValues(layer: tf.layers.Layer, name: string): number[] {
  const i = layer.weights.findIndex((w) => w.originalName.endsWith(name));
  if (i < 0) throw new Error(`no weight ${name}`);
  return Array.from(layer.getWeights()[i].dataSync());
}

/** True when every weight of `layer` equals `before` bit for bit. */
export function unchanged(layer: tf.layers.Layer, before: tf.Tensor[]): boolean {
  return layer.getWeights().every((w, i) => {
    const a = w.dataSync();
    const b = before[i].dataSync();
    return a.length === b.length && a.every((v, j) => Object.is(v, b[j]));
  });
}

/** Builds `layer` for `shape` and returns it. */
export function built<T extends tf.layers.Layer>(layer: T, shape: number[]): T {
  layer.build(shape);
  return layer;
}

/** Float64 per-channel mean and biased variance of rows [M][C]: the reference the tests compare with. */
export function moments64(rows: number[][]): { mean: number[]; variance: number[] } {
  const m = rows.length;
  const c = rows[0].length;
  const mean = Array.from({ length: c }, (_, j) => rows.reduce((s, r) => s + r[j], 0) / m);
  const variance = Array.from(
    { length: c },
    (_, j) => rows.reduce((s, r) => s + (r[j] - mean[j]) ** 2, 0) / m,
  );
  return { mean, variance };
}

/** What {@link trainingGradient64} needs to know about the layer and the call. */
export interface Gradient64Options {
  /** Channel axis (non-negative). */
  axis: number;
  epsilon: number;
  /** γ per channel (default 1). */
  gamma?: number[];
  /** Ghost BatchNorm's virtual batch size (default: the whole batch). */
  virtualBatchSize?: number;
  /** A mask, one 0/1 weight per position (x's shape without the channel axis), row-major. */
  mask?: number[];
  /**
   * Batch Renormalization against reference statistics (the layer's moving mean and variance
   * before the step), with r clipped to [1/rmax, rmax]; r is a constant of the gradient.
   */
  renorm?: { variance: number[]; rmax: number };
}

/**
 * ∂/∂x of Σ y·dy for a BatchNorm training call, in float64 from the float32 values of x and dy:
 * per channel and virtual batch, with w the mask (1 without one), n = Σw, μ = Σw·x/n,
 * σ² = Σw·(x−μ)²/n, x̂ = (x−μ)/√(σ²+ε) and r the renorm factor (1 without renorm),
 *
 *   dx = γ·r/√(σ²+ε) · (dy − w·(Σdy + x̂·Σdy·x̂)/n)        (sums over every position)
 *
 * the gradient of y = γ·(x̂·r + d) + β with r, d held constant (Ioffe & Szegedy 2015, Sec. 3;
 * Ioffe 2017, Alg. 1; Keras 3's masked moments).
 */
export function trainingGradient64(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  shape: readonly number[],
  options: Gradient64Options,
): Float64Array {
  const { axis, epsilon } = options;
  const channels = shape[axis];
  const inner = shape.slice(axis + 1).reduce((p, d) => p * d, 1);
  const perSample = x.length / shape[0];
  const batch = shape[0];
  const size = options.virtualBatchSize ?? batch;
  const groups = Math.ceil(batch / size);
  const gamma = options.gamma ?? new Array<number>(channels).fill(1);
  // Element i: its channel, its virtual batch, and its mask weight.
  const channelOf = (i: number) => Math.floor(i / inner) % channels;
  const groupOf = (i: number) => Math.floor(Math.floor(i / perSample) / size);
  const weightOf = (i: number) => {
    if (!options.mask) return 1;
    const outer = Math.floor(i / (channels * inner));
    return options.mask[outer * inner + (i % inner)];
  };
  const key = (i: number) => groupOf(i) * channels + channelOf(i);
  const n = new Float64Array(groups * channels);
  const sx = new Float64Array(groups * channels);
  for (let i = 0; i < x.length; i++) {
    n[key(i)] += weightOf(i);
    sx[key(i)] += weightOf(i) * x[i];
  }
  const mu = sx.map((s, k) => s / Math.max(n[k], 1));
  const s2 = new Float64Array(groups * channels);
  for (let i = 0; i < x.length; i++) s2[key(i)] += weightOf(i) * (x[i] - mu[key(i)]) ** 2;
  const variance = s2.map((s, k) => s / Math.max(n[k], 1));
  const inv = variance.map((v) => 1 / Math.sqrt(v + epsilon));
  const r = variance.map((v, k) => {
    if (!options.renorm) return 1;
    const ratio =
      Math.sqrt(v + epsilon) / Math.sqrt(options.renorm.variance[k % channels] + epsilon);
    return Math.min(Math.max(ratio, 1 / options.renorm.rmax), options.renorm.rmax);
  });
  const sumDy = new Float64Array(groups * channels);
  const sumDyXHat = new Float64Array(groups * channels);
  for (let i = 0; i < x.length; i++) {
    const k = key(i);
    sumDy[k] += dy[i];
    sumDyXHat[k] += dy[i] * (x[i] - mu[k]) * inv[k];
  }
  const dx = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const k = key(i);
    const m = Math.max(n[k], 1);
    const xHat = (x[i] - mu[k]) * inv[k];
    const centered = (weightOf(i) * (sumDy[k] + xHat * sumDyXHat[k])) / m;
    dx[i] = gamma[channelOf(i)] * r[k] * inv[k] * (dy[i] - centered);
  }
  return dx;
}

/** max |a − b| / max |b|. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / scale;
}
