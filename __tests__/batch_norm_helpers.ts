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
