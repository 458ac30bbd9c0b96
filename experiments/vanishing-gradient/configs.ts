/**
 * The configurations of the vanishing-gradient experiment and the deep MLP built under each:
 * activations with their usual initializations, BatchNorm, identity shortcuts, dropout, and a
 * too-large initialization without and with gradient clipping.
 */
import * as tf from '@tensorflow/tfjs';
import { layers as dn, mixSeed } from 'tfjs-dropnorm';
import { SEED_PURPOSE } from '../lib/random';

/** Multiplier of the He std of the exploding configurations' hidden kernels. */
export const EXPLODING_GAIN = 2.5;
/** `globalClipNorm` of the clipped configuration. */
export const CLIP_NORM = 1;
/** SGD momentum. */
export const MOMENTUM = 0.9;
/**
 * BatchNorm's moving-average momentum (Keras convention: new = m·old + (1 − m)·batch). 0.9 is
 * PyTorch's default (its momentum 0.1): the validation loss the stopping rule watches is computed
 * with the moving statistics, and Keras's 0.99 lags by ~100 steps on runs of a few hundred.
 */
export const BN_MOMENTUM = 0.9;

/** The network's shape. */
export interface NetShape {
  /** Dense layers, the softmax output included. */
  depth: number;
  /** Units of each hidden layer. */
  width: number;
}

/** One configuration. */
export interface Config {
  name: string;
  description: string;
  activation: 'sigmoid' | 'tanh' | 'relu' | 'leakyRelu' | 'elu';
  batchNorm?: boolean;
  residual?: boolean;
  dropout?: number;
  /** Multiplier of the He std of hidden kernels (exploding configs). */
  gain?: number;
  clip?: boolean;
}

/** The eleven configurations, in report order. */
export const CONFIGS: readonly Config[] = [
  { name: 'sigmoid', activation: 'sigmoid', description: 'sigmoid, Glorot uniform init' },
  { name: 'tanh', activation: 'tanh', description: 'tanh, Glorot uniform init' },
  { name: 'relu', activation: 'relu', description: 'relu, He normal init' },
  {
    name: 'leaky-relu',
    activation: 'leakyRelu',
    description: 'leaky relu (α = 0.3, the tfjs default), He normal init',
  },
  { name: 'elu', activation: 'elu', description: 'elu, He normal init' },
  {
    name: 'sigmoid+bn',
    activation: 'sigmoid',
    batchNorm: true,
    description: 'Dense → the pack’s BatchNorm → sigmoid',
  },
  {
    name: 'relu+bn',
    activation: 'relu',
    batchNorm: true,
    description: 'Dense → the pack’s BatchNorm → relu',
  },
  {
    name: 'residual-relu',
    activation: 'relu',
    residual: true,
    description:
      'h ← h + relu(Wh + b) (identity shortcuts) after a first relu layer; branch kernels at He std / √(depth − 2)',
  },
  {
    name: 'sigmoid+dropout',
    activation: 'sigmoid',
    dropout: 0.5,
    description: 'sigmoid, the pack’s Dropout 0.5 (seeded) after each hidden layer',
  },
  {
    name: 'exploding',
    activation: 'relu',
    gain: EXPLODING_GAIN,
    description: `relu, hidden kernels at ${EXPLODING_GAIN}× the He std, no clipping`,
  },
  {
    name: 'exploding+clip',
    activation: 'relu',
    gain: EXPLODING_GAIN,
    clip: true,
    description: `as exploding, with clipOptimizer(sgd, {globalClipNorm: ${CLIP_NORM}})`,
  },
];

type Initializer = ReturnType<typeof tf.initializers.glorotUniform>;

function kernelInitializer(config: Config, seed: number): Initializer {
  if (config.activation === 'sigmoid' || config.activation === 'tanh') {
    return tf.initializers.glorotUniform({ seed });
  }
  const gain = config.gain ?? 1;
  // He normal = variance scaling with scale 2 (std √(2/fan_in)); ×gain on the std is ×gain² here.
  return tf.initializers.varianceScaling({
    scale: 2 * gain * gain,
    mode: 'fanIn',
    distribution: 'normal',
    seed,
  });
}

/**
 * He normal divided by √(depth − 2), the number of residual branches: with plain He init each
 * block h + relu(Wh) doubles Var(h), a 2^(depth−2) growth; scaled, the sum of the branches keeps
 * Var(h) bounded (Hanin & Rolnick 2018, "How to start training", arXiv:1803.01719).
 */
function residualBranchInitializer(depth: number, seed: number): Initializer {
  return tf.initializers.varianceScaling({
    scale: 2 / Math.max(1, depth - 2),
    mode: 'fanIn',
    distribution: 'normal',
    seed,
  });
}

function activate(config: Config, x: tf.SymbolicTensor): tf.SymbolicTensor {
  const layer =
    config.activation === 'leakyRelu'
      ? tf.layers.leakyReLU()
      : tf.layers.activation({ activation: config.activation });
  return layer.apply(x) as tf.SymbolicTensor;
}

/** The `depth`-Dense-layer network of a configuration, seeded layer by layer. */
export function buildModel(config: Config, shape: NetShape, seed: number): tf.LayersModel {
  const { depth, width } = shape;
  const input = tf.input({ shape: [784] });
  let h: tf.SymbolicTensor = input;
  for (let l = 1; l < depth; l++) {
    const init =
      config.residual && l > 1
        ? residualBranchInitializer(depth, mixSeed(seed, SEED_PURPOSE.init, l))
        : kernelInitializer(config, mixSeed(seed, SEED_PURPOSE.init, l));
    // Fused activations where nothing sits between Dense and activation, so that activation
    // statistics see the Dense layer itself.
    const fused =
      !config.batchNorm &&
      (config.activation === 'sigmoid' ||
        config.activation === 'tanh' ||
        config.activation === 'relu' ||
        config.activation === 'elu');
    const dense = tf.layers.dense({
      units: width,
      kernelInitializer: init,
      useBias: !config.batchNorm, // BatchNorm's β replaces the bias
      activation: fused ? (config.activation as 'sigmoid') : 'linear',
      name: `dense_${l}`,
    });
    let z = dense.apply(h) as tf.SymbolicTensor;
    if (config.batchNorm)
      z = dn.batchNorm({ momentum: BN_MOMENTUM, name: `bn_${l}` }).apply(z) as tf.SymbolicTensor;
    if (!fused) z = activate(config, z);
    if (config.dropout) {
      // The pack's Dropout: a seeded sequence of masks, new at every call.
      z = dn
        .dropout({
          rate: config.dropout,
          seed: mixSeed(seed, SEED_PURPOSE.layer, l),
          name: `dropout_${l}`,
        })
        .apply(z) as tf.SymbolicTensor;
    }
    h = config.residual && l > 1 ? (tf.layers.add().apply([h, z]) as tf.SymbolicTensor) : z;
  }
  // Logits out, softmax inside the loss: tfjs's categoricalCrossentropy on softmax outputs clips
  // probabilities to [1e-7, 1 − 1e-7], which zeroes the gradient of a saturated softmax — the
  // exploding configurations would then report 0 instead of their huge gradients.
  const output = tf.layers
    .dense({
      units: 10,
      kernelInitializer: tf.initializers.glorotUniform({
        seed: mixSeed(seed, SEED_PURPOSE.init, depth),
      }),
      name: `dense_${depth}`,
    })
    .apply(h) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: output, name: config.name });
}
