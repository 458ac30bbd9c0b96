/**
 * The regularization configurations of the overfitting experiment and the MLP built under each,
 * with the seed's initial weights shared by every configuration.
 */
import * as tf from '@tensorflow/tfjs';
import { layers as dn, mixSeed } from 'tfjs-dropnorm';
import { MNIST_CLASSES, MNIST_PIXELS } from '../lib/mnist';
import { SEED_PURPOSE } from '../lib/random';

/** Hyperparameters shared by every configuration. */
export interface ModelOptions {
  /** Units of each of the two hidden layers. */
  hidden: number;
  /** Dropout rate of every dropout-like configuration (Srivastava et al. 2014 use 0.5 on hidden units). */
  rate: number;
  /** λ of the L2 configuration: the loss gets λ·Σw² over every kernel. */
  l2: number;
  /** Adam learning rate. */
  learningRate: number;
}

/** Training-loop settings shared by every configuration. */
export interface TrainOptions {
  epochs: number;
  batchSize: number;
}

/** One regularization configuration. */
export interface ConfigSpec {
  /** Short id, used in the JSON, the table and file names. */
  id: string;
  /** What the report calls it. */
  label: string;
  /** True for the configurations whose noise is a form of dropout (the report groups them). */
  dropoutFamily: boolean;
}

/** The nine configurations, baseline first. */
export const CONFIGS: readonly ConfigSpec[] = [
  { id: 'none', label: 'No regularization', dropoutFamily: false },
  { id: 'tfjs-dropout', label: 'Built-in tf.layers.dropout', dropoutFamily: true },
  { id: 'dropout', label: 'Pack Dropout (inverted)', dropoutFamily: true },
  { id: 'dropout-classic', label: 'Pack Dropout (classic)', dropoutFamily: true },
  { id: 'gaussian-dropout', label: 'Pack GaussianDropout', dropoutFamily: true },
  { id: 'dropconnect', label: 'Pack DropConnectDense', dropoutFamily: true },
  { id: 'batchnorm', label: 'Pack BatchNorm', dropoutFamily: false },
  { id: 'batchnorm-dropout', label: 'Pack BatchNorm + Dropout', dropoutFamily: true },
  { id: 'l2', label: 'L2 weight decay', dropoutFamily: false },
];

/** The id of the configuration every other one is compared with. */
export const BASELINE = 'none';

/** A line per configuration saying exactly what it adds to the MLP (for the report). */
export function describeConfig(id: string, o: ModelOptions): string {
  switch (id) {
    case 'none':
      return `784-${o.hidden}-${o.hidden}-10 MLP, ReLU, softmax output`;
    case 'tfjs-dropout':
      return `\`tf.layers.dropout({rate: ${o.rate}})\` after each hidden ReLU`;
    case 'dropout':
      return `\`layers.dropout({rate: ${o.rate}, mode: 'inverted', seed})\` after each hidden ReLU`;
    case 'dropout-classic':
      return `\`layers.dropout({rate: ${o.rate}, mode: 'classic', seed})\` after each hidden ReLU`;
    case 'gaussian-dropout':
      return `\`layers.gaussianDropout({rate: ${o.rate}, seed})\` after each hidden ReLU`;
    case 'dropconnect':
      return `both hidden Dense layers replaced by \`layers.dropConnectDense({units, rate: ${o.rate}, seed})\``;
    case 'batchnorm':
      return '`layers.batchNorm()` between each hidden Dense and its ReLU';
    case 'batchnorm-dropout':
      return `Dense → \`layers.batchNorm()\` → ReLU → \`layers.dropout({rate: ${o.rate}})\` per hidden layer`;
    case 'l2':
      return `\`tf.regularizers.l2({l2: ${o.l2}})\` on every kernel`;
    default:
      throw new Error(`describeConfig: unknown configuration id ${JSON.stringify(id)}.`);
  }
}

/**
 * The MLP of configuration `id`. `seed` seeds the pack's stochastic layers, a different stream per
 * layer (two layers with one seed would draw the same masks). Initial weights do not matter here:
 * {@link copyInitialWeights} overwrites them.
 */
export function buildModel(id: string, o: ModelOptions, seed: number): tf.Sequential {
  if (!CONFIGS.some((c) => c.id === id)) {
    throw new Error(`buildModel: unknown configuration id ${JSON.stringify(id)}.`);
  }
  const model = tf.sequential();
  const layerSeed = (k: number) => mixSeed(seed, SEED_PURPOSE.layer, k);
  for (let k = 0; k < 2; k++) {
    const first = k === 0 ? { inputShape: [MNIST_PIXELS] } : {};
    const batchNorm = id === 'batchnorm' || id === 'batchnorm-dropout';
    if (id === 'dropconnect') {
      model.add(
        dn.dropConnectDense({
          ...first,
          units: o.hidden,
          rate: o.rate,
          seed: layerSeed(k),
          activation: 'relu',
        }),
      );
    } else {
      model.add(
        tf.layers.dense({
          ...first,
          units: o.hidden,
          activation: batchNorm ? 'linear' : 'relu',
          kernelRegularizer: id === 'l2' ? tf.regularizers.l2({ l2: o.l2 }) : undefined,
        }),
      );
    }
    if (batchNorm) {
      model.add(dn.batchNorm());
      model.add(tf.layers.activation({ activation: 'relu' }));
    }
    switch (id) {
      case 'tfjs-dropout':
        // No seed on purpose: tfjs 4.22's seeded Dropout draws the same mask at every call. Its
        // unseeded masks come from Math.random, which runTask seeds instead.
        model.add(tf.layers.dropout({ rate: o.rate }));
        break;
      case 'dropout':
      case 'batchnorm-dropout':
        model.add(dn.dropout({ rate: o.rate, mode: 'inverted', seed: layerSeed(k) }));
        break;
      case 'dropout-classic':
        model.add(dn.dropout({ rate: o.rate, mode: 'classic', seed: layerSeed(k) }));
        break;
      case 'gaussian-dropout':
        model.add(dn.gaussianDropout({ rate: o.rate, seed: layerSeed(k) }));
        break;
    }
  }
  model.add(
    tf.layers.dense({
      units: MNIST_CLASSES,
      activation: 'softmax',
      kernelRegularizer: id === 'l2' ? tf.regularizers.l2({ l2: o.l2 }) : undefined,
    }),
  );
  return model;
}

/**
 * The seed's initial weights of the three Dense layers, `[kernel, bias]` each: Glorot-uniform
 * kernels drawn with seeded initializers and zero biases, as `tf.layers.dense` initializes them.
 */
export function initialWeights(o: ModelOptions, seed: number): tf.Tensor[][] {
  const sizes = [MNIST_PIXELS, o.hidden, o.hidden, MNIST_CLASSES];
  return sizes.slice(1).map((units, k) => {
    const kernel = tf.initializers
      .glorotUniform({ seed: mixSeed(seed, SEED_PURPOSE.init, k) })
      .apply([sizes[k], units]) as tf.Tensor;
    return [kernel, tf.zeros([units])];
  });
}

/**
 * Copies the seed's initial Dense weights into `model`: the layers that own a 2-D `kernel`, in
 * order, get `[kernel, bias]` (shapes checked). BatchNorm keeps its own initial state (γ = 1, β = 0).
 */
export function copyInitialWeights(model: tf.LayersModel, initial: tf.Tensor[][]): void {
  const dense = model.layers.filter(
    (l) => l.weights.length >= 2 && l.weights[0].shape.length === 2,
  );
  if (dense.length !== initial.length) {
    throw new Error(
      `copyInitialWeights: expected ${initial.length} Dense-like layers, found ${dense.length}.`,
    );
  }
  dense.forEach((layer, k) => {
    const [kernel, bias] = initial[k];
    const current = layer.getWeights();
    if (
      current.length !== 2 ||
      !tf.util.arraysEqual(current[0].shape, kernel.shape) ||
      !tf.util.arraysEqual(current[1].shape, bias.shape)
    ) {
      throw new Error(
        `copyInitialWeights: layer '${layer.name}' has weights of shapes ` +
          `${JSON.stringify(current.map((w) => w.shape))}, expected [${kernel.shape}], [${bias.shape}].`,
      );
    }
    layer.setWeights([kernel, bias]);
  });
}
