/**
 * Recognizing BatchNorm layers (the pack's and the built-in) and reading their inference
 * parameters, shared by the model transforms.
 */
import * as tf from '@tensorflow/tfjs';
import { describeLayer, invalidArgument } from '../errors';
import { BatchNorm } from '../layers/batch_norm';
import { BatchNormStatistics } from '../ops/fold';
import { VarianceCorrection } from '../ops/batch_norm';
import { baseLayerConfig, pickConfig } from './rewrite';

type Layer = tf.layers.Layer;
type ConfigDict = tf.serialization.ConfigDict;

/** The built-in's serialization name. */
export const BUILTIN_BATCH_NORM = 'BatchNormalization';

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
 * The BN's inference parameters (tensors owned by the layer; do not dispose). Throws when the
 * moving variance is not finite or σ²+ε is not positive: such a model has no inference map to fold.
 */
export function readBatchNormStatistics(owner: string, layer: Layer): BatchNormStatistics {
  const weights = layer.getWeights();
  const idx = batchNormWeightIndices(layer);
  const epsilon = layer.getConfig().epsilon as number;
  const stats: BatchNormStatistics = {
    gamma: idx.gamma === null ? null : weights[idx.gamma],
    beta: idx.beta === null ? null : weights[idx.beta],
    movingMean: weights[idx.movingMean],
    movingVariance: weights[idx.movingVariance],
    epsilon,
  };
  const variance = stats.movingVariance.dataSync();
  const bad = Array.from(variance).findIndex((v) => !Number.isFinite(v) || !(v + epsilon > 0));
  if (bad >= 0) {
    throw invalidArgument(
      owner,
      `moving_variance of ${describeLayer(layer)}`,
      `${variance[bad]} (channel ${bad})`,
      'to be finite with moving_variance + epsilon > 0',
      'The running statistics are broken (e.g. training diverged); recompute them with recalibrateBatchNorm or retrain.',
    );
  }
  const others = [stats.movingMean, stats.gamma, stats.beta].filter((t) => t) as tf.Tensor[];
  for (const t of others) {
    if (Array.from(t.dataSync()).some((v) => !Number.isFinite(v))) {
      throw invalidArgument(
        owner,
        `every parameter of ${describeLayer(layer)}`,
        'a non-finite value',
        'to be finite',
        'The layer holds NaN or Infinity; retrain or recalibrate it.',
      );
    }
  }
  return stats;
}
