/**
 * The demo's CNN and the configurations the user picks, after experiments/cnn-dropout-bn
 * (configs.ts) at a size a software GPU trains in seconds:
 *
 *   28×28×1 → block(8) → block(16) → flatten → Dense(32) [→ norm] → ReLU → Dense(10) softmax
 *   block(f) = Conv 3×3 'same' (f filters) [→ norm] → ReLU → MaxPool 2×2
 *
 * The places of dropout and BatchNorm follow Li et al. (CVPR 2019), "Understanding the Disharmony
 * between Dropout and Batch Normalization by Variance Shift": dropout in front of a BN makes the
 * BN's training-time input variance larger than its inference-time one; dropout after the last
 * BN does not.
 */
import * as tf from '@tensorflow/tfjs';
import * as dn from 'tfjs-dropnorm';

export interface DemoConfig {
  id: string;
  label: string;
  /** The layer between each linear layer and its ReLU, if any. */
  norm: 'none' | 'batchNorm' | 'groupNorm';
  dropout: 'none' | 'dense' | 'before-bn' | 'after-last-bn';
}

export const CONFIGS: readonly DemoConfig[] = [
  { id: 'none', label: 'No regularization', norm: 'none', dropout: 'none' },
  { id: 'dropout', label: 'Dropout after the dense layer', norm: 'none', dropout: 'dense' },
  { id: 'bn', label: 'BatchNorm', norm: 'batchNorm', dropout: 'none' },
  {
    id: 'dropout-before-bn',
    label: 'Dropout before each later BN (variance shift)',
    norm: 'batchNorm',
    dropout: 'before-bn',
  },
  {
    id: 'bn-dropout-after',
    label: 'BatchNorm, dropout after the last BN',
    norm: 'batchNorm',
    dropout: 'after-last-bn',
  },
  { id: 'groupnorm', label: 'GroupNorm (batch-independent)', norm: 'groupNorm', dropout: 'dense' },
];

/** Dropout rate: high enough that the variance shift is plain to see. */
export const DROPOUT_RATE = 0.5;

/**
 * BatchNorm momentum: 0.9 rather than the default 0.99, so that the moving statistics forget their
 * initial values (mean 0, variance 1) within the few dozen steps a demo run lasts (0.9⁴⁰ ≈ 0.015,
 * where 0.99⁴⁰ ≈ 0.67 would still be mostly the initial variance); the variance shift is then the
 * dropout's, not the run's shortness.
 */
export const BN_MOMENTUM = 0.9;

/** The CNN of `config`, compiled with Adam and cross-entropy; `seed` fixes kernels and dropout masks. */
export function buildModel(config: DemoConfig, seed: number): tf.Sequential {
  const model = tf.sequential({ name: `demo_${config.id.replace(/-/g, '_')}` });
  const add = (layer: tf.layers.Layer) => model.add(layer);
  const init = (k: number) => tf.initializers.heNormal({ seed: seed * 100 + k });
  const normalize = (k: number, rank: number) => {
    if (config.norm === 'batchNorm') add(dn.layers.batchNorm({ momentum: BN_MOMENTUM }));
    // GroupNorm (Wu & He 2018) normalizes each sample over groups of channels: the conv blocks
    // only (the dense layer's 32 units stay as they are).
    if (config.norm === 'groupNorm' && rank === 4) add(dn.layers.groupNorm({ groups: 4 }));
    add(tf.layers.activation({ activation: 'relu', name: `relu_${k}` }));
  };
  const dropoutBefore = (k: number) => {
    if (config.dropout === 'before-bn' && k > 0) {
      add(dn.layers.dropout({ rate: DROPOUT_RATE, seed: seed * 100 + 10 + k }));
    }
  };
  const bias = config.norm === 'none' || config.norm === 'groupNorm';
  [8, 16].forEach((filters, k) => {
    dropoutBefore(k);
    add(
      tf.layers.conv2d({
        ...(k === 0 ? { inputShape: [28, 28, 1] } : {}),
        filters,
        kernelSize: 3,
        padding: 'same',
        useBias: bias,
        kernelInitializer: init(k),
      }),
    );
    normalize(k, 4);
    add(tf.layers.maxPooling2d({ poolSize: 2 }));
  });
  add(tf.layers.flatten());
  dropoutBefore(2);
  add(tf.layers.dense({ units: 32, useBias: bias, kernelInitializer: init(2) }));
  normalize(2, 2);
  if (config.dropout === 'dense' || config.dropout === 'after-last-bn') {
    add(dn.layers.dropout({ rate: DROPOUT_RATE, seed: seed * 100 + 20 }));
  }
  add(
    tf.layers.dense({
      units: 10,
      activation: 'softmax',
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed * 100 + 3 }),
    }),
  );
  model.compile({
    optimizer: tf.train.adam(2e-3),
    loss: 'categoricalCrossentropy',
    metrics: ['accuracy'],
  });
  return model;
}

/**
 * The variance shift as experiments/cnn-dropout-bn/variance.ts measures it: for each BN, the mean
 * over channels of Var_inference(x_c) / moving_variance_c, x the BN's input over `x` with the whole
 * model in inference mode (`predict`). Reads back with awaited `data()` only.
 */
export async function varianceShift(
  model: tf.LayersModel,
  x: tf.Tensor,
  batchSize: number,
): Promise<{ name: string; afterDropout: boolean; ratio: number }[]> {
  const bns = model.layers.filter((l) => l instanceof dn.BatchNorm);
  if (bns.length === 0) return [];
  // A model over the same layers whose outputs are the BNs' inputs; predict = inference mode.
  const probe = tf.model({
    inputs: model.inputs,
    outputs: bns.map((bn) => bn.input as tf.SymbolicTensor),
  });
  const variances = tf.tidy(() => {
    const out = probe.predict(x, { batchSize });
    return (Array.isArray(out) ? out : [out]).map((input) => {
      const axes = Array.from({ length: input.rank - 1 }, (_, a) => a);
      return tf.moments(input, axes).variance;
    });
  });
  const rows = [];
  for (const [i, bn] of bns.entries()) {
    const variance = await variances[i].data();
    const weight = bn.weights.find((w) => w.originalName.endsWith('moving_variance'))!;
    const moving = await weight.read().data();
    const ratios = Array.from(variance)
      .map((v, c) => v / moving[c])
      .filter((_, c) => moving[c] > 1e-12);
    const index = model.layers.indexOf(bn);
    let afterDropout = false;
    for (let j = index - 1; j >= 0 && !(model.layers[j] instanceof dn.BatchNorm); j--) {
      if (model.layers[j] instanceof dn.StochasticLayer) afterDropout = true;
    }
    rows.push({
      name: bn.name,
      afterDropout,
      ratio: ratios.reduce((s, r) => s + r, 0) / ratios.length,
    });
  }
  tf.dispose(variances);
  return rows;
}
