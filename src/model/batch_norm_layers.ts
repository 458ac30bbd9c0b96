/**
 * Recognizing BatchNorm layers (the pack's and the built-in) and reading their inference
 * parameters, shared by the model transforms.
 */
import * as tf from '@tensorflow/tfjs';
import { checkOptionKeys, describeLayer, invalidArgument } from '../errors';
import { BatchNorm } from '../layers/batch_norm';
import { BatchNormStatistics } from '../ops/fold';
import { VarianceCorrection } from '../ops/batch_norm';
import { walkLayers } from '../layers/util';
import { assertLayersModel, baseLayerConfig, pickConfig } from './rewrite';

type Layer = tf.layers.Layer;
type ConfigDict = tf.serialization.ConfigDict;

/** The built-in's serialization name. */
export const BUILTIN_BATCH_NORM = 'BatchNormalization';

/**
 * The highest input rank tf.layers.batchNormalization runs in tfjs 4.22: its op, tf.batchNorm,
 * throws "batchNormalization is not implemented for array of rank 5 yet" beyond it (Conv3D nets).
 */
export const MAX_BUILTIN_BATCH_NORM_RANK = 4;

/** Whether `layer` is a BatchNorm: the built-in `BatchNormalization` or the pack's `BatchNorm`. */
export function isBatchNormLayer(layer: Layer): boolean {
  const name = layer.getClassName();
  return name === BUILTIN_BATCH_NORM || name === BatchNorm.className;
}

/** The BN's variance correction: its own for the pack's, 'biased' for the built-in. */
export function varianceCorrectionOf(layer: Layer): VarianceCorrection {
  return layer instanceof BatchNorm ? layer.varianceCorrection : 'biased';
}

/** Channel axis (non-negative) of a BN whose input has rank `rank`. */
export function batchNormAxis(layer: Layer, rank: number): number {
  const raw = layer.getConfig().axis as number | number[];
  const axis = Array.isArray(raw) ? raw[0] : raw;
  return axis < 0 ? axis + rank : axis;
}

/**
 * Positions of the BN's weights in `getWeights()`: the built-in and the pack share the order
 * `[gamma?, beta?, moving_mean, moving_variance, …extra]`.
 */
export function batchNormWeightIndices(layer: Layer): {
  gamma: number | null;
  beta: number | null;
  movingMean: number;
  movingVariance: number;
} {
  const config = layer.getConfig();
  const scale = config.scale !== false;
  const center = config.center !== false;
  let i = 0;
  const gamma = scale ? i++ : null;
  const beta = center ? i++ : null;
  return { gamma, beta, movingMean: i, movingVariance: i + 1 };
}

/** The config keys of tf.layers.batchNormalization beyond the base Layer's. */
const BUILTIN_BN_KEYS = [
  'axis',
  'momentum',
  'epsilon',
  'center',
  'scale',
  'betaInitializer',
  'gammaInitializer',
  'movingMeanInitializer',
  'movingVarianceInitializer',
  'betaRegularizer',
  'gammaRegularizer',
  'betaConstraint',
  'gammaConstraint',
];

/**
 * The config of a built-in BatchNormalization with the BN's settings: the base Layer keys and the
 * built-in's own, without the pack's (varianceCorrection, renorm, …). `momentum` stays as it is,
 * null included: where the built-in needs a number is the caller's call.
 */
export function builtinBatchNormConfig(layer: Layer): ConfigDict {
  const config = layer.getConfig();
  return { ...baseLayerConfig(config), ...pickConfig(config, BUILTIN_BN_KEYS) };
}

/**
 * The BN's weights a built-in BatchNormalization holds, `[gamma?, beta?, moving_mean,
 * moving_variance]`: the pack's training state after them (num_batches_tracked, renorm's) left out.
 */
export function builtinBatchNormWeights(layer: Layer): tf.Tensor[] {
  return layer.getWeights().slice(0, batchNormWeightIndices(layer).movingVariance + 1);
}

/**
 * The BN's inference parameters (tensors owned by the layer; do not dispose). Reads no value: a
 * broken BN (non-finite statistics, σ²+ε ≤ 0) folds into non-finite weights, as the BN itself
 * computes non-finite outputs; {@link checkBatchNormStatistics} is the check, one awaited read.
 */
export function batchNormStatistics(layer: Layer): BatchNormStatistics {
  const weights = layer.getWeights();
  const idx = batchNormWeightIndices(layer);
  return {
    gamma: idx.gamma === null ? null : weights[idx.gamma],
    beta: idx.beta === null ? null : weights[idx.beta],
    movingMean: weights[idx.movingMean],
    movingVariance: weights[idx.movingVariance],
    epsilon: layer.getConfig().epsilon as number,
  };
}

/**
 * Throws unless every BN of `layers` has finite parameters with moving_variance + ε > 0: such a BN
 * has no inference map to fold or export. All BNs are read at once, with one awaited `data()` (no
 * synchronous read, so webgl and webgpu do not stall): this is the check the async model tools
 * (`foldBatchNormAsync`, `exportForInferenceAsync`) run first.
 */
export async function checkBatchNormStatistics(
  owner: string,
  layers: readonly Layer[],
): Promise<void> {
  const bns = layers.filter(isBatchNormLayer);
  if (bns.length === 0) return;
  const sizes: number[] = [];
  // Per BN: its variances (C), a bad-variance flag per channel (C), one flag for the others.
  const packed = tf.tidy(() => {
    const parts = bns.map((layer) => {
      const stats = batchNormStatistics(layer);
      const variance = tf.cast(tf.reshape(stats.movingVariance, [-1]), 'float32');
      sizes.push(variance.size);
      const badVariance = tf.logicalOr(
        tf.logicalNot(tf.isFinite(variance)),
        tf.logicalNot(tf.greater(tf.add(variance, stats.epsilon), 0)),
      );
      const others = [stats.movingMean, stats.gamma, stats.beta].filter((t) => t) as tf.Tensor[];
      const badOther = tf.any(tf.stack(others.map((t) => tf.any(tf.logicalNot(tf.isFinite(t))))));
      return tf.concat([
        variance,
        tf.cast(badVariance, 'float32'),
        tf.reshape(tf.cast(badOther, 'float32'), [1]),
      ]);
    });
    return tf.concat(parts);
  });
  let values: Float32Array;
  try {
    values = (await packed.data()) as Float32Array;
  } finally {
    packed.dispose();
  }
  let at = 0;
  bns.forEach((layer, b) => {
    const c = sizes[b];
    const variance = values.subarray(at, at + c);
    const bad = Array.from(values.subarray(at + c, at + 2 * c)).findIndex((v) => v !== 0);
    const badOther = values[at + 2 * c] !== 0;
    at += 2 * c + 1;
    if (bad >= 0) {
      throw invalidArgument(
        owner,
        `moving_variance of ${describeLayer(layer)}`,
        `${variance[bad]} (channel ${bad})`,
        'to be finite with moving_variance + epsilon > 0',
        'The running statistics are broken (e.g. training diverged); recompute them with recalibrateBatchNorm or retrain.',
      );
    }
    if (badOther) {
      throw invalidArgument(
        owner,
        `every parameter of ${describeLayer(layer)}`,
        'a non-finite value',
        'to be finite',
        'The layer holds NaN or Infinity; retrain or recalibrate it.',
      );
    }
  });
}

/**
 * The first checks of an async model tool (`foldBatchNormAsync`, `exportForInferenceAsync`):
 * `model` is a LayersModel, `options` names only `known` keys, then
 * {@link checkBatchNormStatistics} on every layer, nested models and wrappers included.
 */
export async function checkModelStatistics(
  owner: string,
  model: unknown,
  options: unknown,
  known: readonly string[],
): Promise<void> {
  assertLayersModel(owner, model);
  checkOptionKeys(owner, options, known);
  await checkBatchNormStatistics(
    owner,
    walkLayers(model).map((l) => l.layer),
  );
}
