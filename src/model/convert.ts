/**
 * Conversion between tfjs's built-in layers and the pack's, so existing models can use the pack
 * (and models trained with the pack can be shipped with built-ins only). Built on
 * {@link rewriteModel}: a new model, the input untouched.
 */
import * as tf from '@tensorflow/tfjs';
import { checkOptionKeys, invalidArgument, optionKeys } from '../errors';
import { BatchNorm } from '../layers/batch_norm';
import { Dropout } from '../layers/dropout';
import { VarianceCorrection } from '../ops/batch_norm';
import { BUILTIN_BATCH_NORM, batchNormAxis, batchNormWeightIndices } from './batch_norm_layers';
import { LayerSpec, Substitution, assertLayersModel, modelGraph, rewriteModel } from './rewrite';

type Layer = tf.layers.Layer;

/** Options of {@link convertToDropnorm}. */
export interface ConvertToDropnormOptions {
  /**
   * varianceCorrection of the new BatchNorms (default 'unbiased', the pack's default). Inference is
   * the same either way; it decides what later training writes into moving_variance.
   */
  varianceCorrection?: VarianceCorrection;
}

/** Momentum given to a built-in BN converted from a cumulative (`momentum: null`) BatchNorm. */
export const CUMULATIVE_FALLBACK_MOMENTUM = 0.99;

const BUILTIN_DROPOUT = 'Dropout';

/**
 * Replaces every built-in `BatchNormalization` by the pack's {@link BatchNorm} with the same
 * config and weights (γ, β, moving mean and variance carried over), and every built-in `Dropout` by
 * the pack's {@link Dropout} (same rate, noiseShape and seed; mode 'inverted', the built-in's).
 *
 * Inference outputs are identical, except for channels-first BNs (axis ≠ −1 on rank ≥ 3), which
 * the built-in evaluates along the wrong axis (tfjs#1106) and the pack's evaluates correctly.
 * Behaviour differences in training are those of {@link BatchNorm}: unbiased running variance by
 * default, and `trainable = false` means inference mode.
 *
 * @returns a new, uncompiled functional LayersModel; the input model is untouched.
 */
export function convertToDropnorm(
  model: tf.LayersModel,
  options: ConvertToDropnormOptions = {},
): tf.LayersModel {
  const owner = 'convertToDropnorm';
  assertLayersModel(owner, model);
  checkOptionKeys(
    owner,
    options,
    optionKeys<ConvertToDropnormOptions>({ varianceCorrection: true }),
  );
  const varianceCorrection = options.varianceCorrection ?? 'unbiased';
  if (varianceCorrection !== 'unbiased' && varianceCorrection !== 'biased') {
    throw invalidArgument(
      owner,
      'options.varianceCorrection',
      varianceCorrection,
      "to be 'unbiased' or 'biased'",
    );
  }
  const subs = new Map<Layer, Substitution>();
  for (const node of modelGraph(model).nodes) {
    const layer = node.layer;
    if (subs.has(layer)) continue;
    if (layer.getClassName() === BUILTIN_BATCH_NORM) {
      subs.set(layer, {
        replace: {
          className: BatchNorm.className,
          config: { ...layer.getConfig(), varianceCorrection },
        },
      });
    } else if (layer.getClassName() === BUILTIN_DROPOUT) {
      subs.set(layer, {
        replace: {
          className: Dropout.className,
          config: { ...layer.getConfig(), mode: 'inverted' },
        },
      });
    }
  }
  return rewriteModel(model, subs, { owner });
}

/**
 * Replaces every pack {@link BatchNorm} by a built-in `BatchNormalization` with the same config
 * and weights; `num_batches_tracked` (cumulative mode) is dropped and `momentum: null` becomes
 * {@link CUMULATIVE_FALLBACK_MOMENTUM}, as the built-in has no cumulative mode. Every pack
 * {@link Dropout} becomes a built-in `Dropout` (rate, noiseShape, seed; a seeded built-in draws the
 * same mask at every call). Inference outputs are identical.
 *
 * @returns a new, uncompiled functional LayersModel; the input model is untouched.
 * @throws DropnormValueError for a channels-first BatchNorm (axis ≠ last on a rank ≥ 3 input): the
 *   built-in would compute wrong outputs for it (tfjs#1106). Fold it first ({@link foldBatchNorm}).
 */
export function convertToBuiltins(model: tf.LayersModel): tf.LayersModel {
  const owner = 'convertToBuiltins';
  assertLayersModel(owner, model);
  const subs = new Map<Layer, Substitution>();
  for (const node of modelGraph(model).nodes) {
    const layer = node.layer;
    if (subs.has(layer)) continue;
    if (layer instanceof Dropout) {
      subs.set(layer, { replace: builtinDropout(owner, layer) });
      continue;
    }
    if (!(layer instanceof BatchNorm)) continue;
    const rank = node.inputs[0].shape.length;
    if (batchNormAxis(layer, rank) !== rank - 1) {
      throw invalidArgument(
        owner,
        `the channel axis of BatchNorm '${layer.name}'`,
        layer.axis,
        `to be the last axis of its rank-${rank} input`,
        'tf.layers.batchNormalization applies its statistics along the last axis whatever its axis (tfjs#1106), so it would compute wrong outputs; fold the BN (foldBatchNorm) or keep the pack layer.',
      );
    }
    const config = layer.getConfig();
    const momentum = config.momentum;
    delete config.varianceCorrection;
    const n = batchNormWeightIndices(layer).movingVariance + 1;
    subs.set(layer, {
      replace: {
        className: BUILTIN_BATCH_NORM,
        config: { ...config, momentum: momentum ?? CUMULATIVE_FALLBACK_MOMENTUM },
        weights: layer.getWeights().slice(0, n),
      },
    });
  }
  return rewriteModel(model, subs, { owner });
}

function builtinDropout(owner: string, layer: Dropout): LayerSpec {
  if (layer.mode !== 'inverted') {
    throw invalidArgument(
      owner,
      `the mode of Dropout '${layer.name}'`,
      layer.mode,
      "to be 'inverted'",
      "tf.layers.dropout has no 'classic' mode (it would drop the (1−rate) inference scaling); keep the pack layer.",
    );
  }
  const config = layer.getConfig();
  delete config.mode;
  if (config.seed == null) delete config.seed;
  if (config.noiseShape == null) delete config.noiseShape;
  return { className: BUILTIN_DROPOUT, config };
}
