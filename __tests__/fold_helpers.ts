/** Helpers for the folding, recalibration and conversion tests. */
import * as tf from '@tensorflow/tfjs';
import { batchNormWeightIndices, isBatchNormLayer } from '../src/model/batch_norm_layers';
import { maxAbsDiff } from './helpers';

/**
 * Gives every BN of `model` non-trivial statistics: γ ∈ [0.5, 2], β ∈ [−1, 1], μ ∈ [−2, 2],
 * σ² ∈ [0.2, 3] (seeded), so that folding errors cannot hide behind the identity map. BNs are
 * recognized, and their weights found, by the transforms' own helpers.
 */
export function randomizeBatchNorms(model: tf.LayersModel, seed = 1): void {
  let s = seed;
  for (const layer of model.layers) {
    if (!isBatchNormLayer(layer)) continue;
    const weights = layer.getWeights();
    const index = batchNormWeightIndices(layer);
    const c = weights[index.movingMean].size;
    // Extra state of the pack's BN (num_batches_tracked) keeps its value.
    const next = [...weights];
    const draw = (i: number, low: number, high: number) =>
      (next[i] = tf.randomUniform([c], low, high, 'float32', s++));
    if (index.gamma !== null) draw(index.gamma, 0.5, 2);
    if (index.beta !== null) draw(index.beta, -1, 1);
    draw(index.movingMean, -2, 2);
    draw(index.movingVariance, 0.2, 3);
    layer.setWeights(next);
    tf.dispose(next.filter((t) => !weights.includes(t)));
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
