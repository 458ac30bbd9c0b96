/**
 * The variance shift of Li et al. (CVPR 2019, "Understanding the Disharmony between Dropout and
 * Batch Normalization by Variance Shift"): dropout before a BN makes the variance of the BN's
 * input in training (dropout on) larger than at inference (dropout off), so the moving variance
 * the BN learned in training does not match what it normalizes at inference.
 *
 * Measured per BN layer as the mean over channels c of
 *
 *   ratio_c = Var_inference(x_c) / moving_variance_c
 *
 * where x is the BN's input computed over a data set with the whole model in inference mode, and
 * Var is the population variance over every element of channel c (batch and spatial positions).
 * 1 means no shift; dropout before the BN pushes it below 1.
 */
import * as tf from '@tensorflow/tfjs';
import { BatchNorm, StochasticLayer } from 'tfjs-dropnorm';
import { inferenceInputs } from '../lib/nets';

/** The shift measured at one BN layer. */
export interface BatchNormShift {
  /** The BN's position among the model's BNs (0 = closest to the input). */
  index: number;
  /** Whether one of the pack's dropout layers sits between the previous BN (or the input) and this one. */
  afterDropout: boolean;
  /** Mean over channels of Var_inference / moving_variance (channels with moving variance 0 left out). */
  ratio: number;
  /** Smallest and largest channel ratio. */
  min: number;
  max: number;
}

/** The model's BN layers, input side first. */
export function batchNorms(model: tf.LayersModel): BatchNorm[] {
  return model.layers.filter((l): l is BatchNorm => l instanceof BatchNorm);
}

function movingVariance(layer: BatchNorm): tf.Tensor {
  const weight = layer.weights.find((w) => w.originalName.endsWith('moving_variance'));
  if (!weight) throw new Error(`variance shift: '${layer.name}' has no moving_variance weight.`);
  return weight.read();
}

/** Whether the BN's input carries dropout noise in training: a dropout layer since the previous BN. */
function dropoutUpstream(model: tf.LayersModel, bn: BatchNorm): boolean {
  const i = model.layers.indexOf(bn);
  for (let j = i - 1; j >= 0; j--) {
    const layer = model.layers[j];
    if (layer instanceof BatchNorm) return false;
    if (layer instanceof StochasticLayer) return true;
  }
  return false;
}

/**
 * {@link BatchNormShift} of every BN of a Sequential `model` on `x`, the model in inference mode
 * (`predict`), in batches of `batchSize`. Leaves the model unchanged.
 */
export function varianceShift(
  model: tf.LayersModel,
  x: tf.Tensor,
  batchSize = 256,
): BatchNormShift[] {
  const bns = batchNorms(model);
  if (bns.length === 0) return [];
  return tf.tidy(() => {
    const inputs = inferenceInputs(model, bns, x, batchSize);
    return bns.map((bn, index) => {
      const input = inputs[index];
      const axes = Array.from({ length: input.rank - 1 }, (_, a) => a);
      const { variance } = tf.moments(input, axes);
      const moving = movingVariance(bn).dataSync();
      // A channel that is constant on the data (a dead ReLU before the BN) has moving variance 0
      // after recalibration: no ratio to take.
      const ratios = Array.from(variance.dataSync())
        .map((v, c) => v / moving[c])
        .filter((_, c) => moving[c] > 1e-12);
      return {
        index,
        afterDropout: dropoutUpstream(model, bn),
        ratio: ratios.reduce((s, r) => s + r, 0) / ratios.length,
        min: Math.min(...ratios),
        max: Math.max(...ratios),
      };
    });
  });
}
