/** Helpers for the folding, recalibration and conversion tests. */
import * as tf from '@tensorflow/tfjs';
import { maxAbsDiff } from './helpers';

const BN_CLASSES = ['BatchNormalization', 'DropnormBatchNorm'];

/**
 * Gives every BN of `model` non-trivial statistics: γ ∈ [0.5, 2], β ∈ [−1, 1], μ ∈ [−2, 2],
 * σ² ∈ [0.2, 3] (seeded), so that folding errors cannot hide behind the identity map.
 */
export function randomizeBatchNorms(model: tf.LayersModel, seed = 1): void {
  let s = seed;
  for (const layer of model.layers) {
    if (!BN_CLASSES.includes(layer.getClassName())) continue;
    const config = layer.getConfig();
    const weights = layer.getWeights();
    const c = weights[(config.scale !== false ? 1 : 0) + (config.center !== false ? 1 : 0)].size;
    const next: tf.Tensor[] = [];
    if (config.scale !== false) next.push(tf.randomUniform([c], 0.5, 2, 'float32', s++));
    if (config.center !== false) next.push(tf.randomUniform([c], -1, 1, 'float32', s++));
    next.push(tf.randomUniform([c], -2, 2, 'float32', s++));
    next.push(tf.randomUniform([c], 0.2, 3, 'float32', s++));
    // The pack's cumulative BN carries num_batches_tracked last.
    for (let i = next.length; i < weights.length; i++) next.push(weights[i]);
    layer.setWeights(next);
  }
}

/** max |a − b| / max |reference|: the error relative to the output scale. */
export function relativeDiff(actual: tf.Tensor, reference: tf.Tensor): number {
  const scale = tf.tidy(() => tf.max(tf.abs(reference)).dataSync()[0]);
  return maxAbsDiff(actual, reference) / Math.max(scale, 1e-12);
}

/** The prediction of a single-output model as one tensor. */
export function predict(model: tf.LayersModel, x: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return model.predict(x) as tf.Tensor;
}

/** Class names of every layer, from the model's JSON (what a loader sees). */
export function classNamesInJson(model: tf.LayersModel): string[] {
  const json = model.toJSON(null, false) as { config: { layers: { class_name: string }[] } };
  return json.config.layers.map((l) => l.class_name);
}

/** Copies of every weight value, for before/after comparisons. */
export function snapshotWeights(model: tf.LayersModel): Float32Array[] {
  return model.getWeights().map((w) => w.dataSync().slice() as Float32Array);
}

/** Seeded standard-normal input. */
export function randn(shape: number[], seed: number, mean = 0, std = 1): tf.Tensor {
  return tf.randomNormal(shape, mean, std, 'float32', seed);
}
