/**
 * The training side of the overfitting experiment: the regularization configurations, the MLP
 * built under each, one training run (same initial weights, same data order, same epochs for every
 * configuration of a seed), evaluation of the whole train and held-out sets after every epoch, and
 * Monte-Carlo dropout on the held-out set.
 */
import * as tf from '@tensorflow/tfjs';
import { layers as dn, mcPredict } from 'tfjs-dropnorm';
import {
  MNIST_CLASSES,
  MNIST_PIXELS,
  MnistData,
  mnistSplit,
  mulberry32,
  shuffleInPlace,
} from '../lib/mnist';
import { runMetrics, RunMetrics } from './analysis';

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
  const layerSeed = (k: number) => seed * 1000 + 17 * k + 1;
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
        // unseeded masks come from Math.random, which runExperiment seeds instead.
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
      .glorotUniform({ seed: seed * 7919 + k })
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

/** The order in which each epoch visits the training set: one seeded permutation per epoch. */
export function epochOrders(n: number, epochs: number, seed: number): Int32Array[] {
  const random = mulberry32(seed * 104729 + 12345);
  return Array.from({ length: epochs }, () =>
    Int32Array.from(
      shuffleInPlace(
        Array.from({ length: n }, (_, i) => i),
        random,
      ),
    ),
  );
}

/** Loss and accuracy of both sets after one epoch, in inference mode. */
export interface EpochMetrics {
  trainLoss: number;
  trainAcc: number;
  heldOutLoss: number;
  heldOutAcc: number;
}

/** One (configuration, seed) training run. */
export interface RunResult {
  config: string;
  seed: number;
  /** Per epoch, index 0 = after epoch 1. */
  curve: EpochMetrics[];
  /** Mean training-mode loss of each epoch as `model.fit` reports it (noise on; L2 penalty included). */
  fitLoss: number[];
  seconds: number;
}

/** The tensors of one seed's data: train and held-out stacked so one predict call evaluates both. */
export interface SeedData {
  xTrain: tf.Tensor2D;
  yTrain: tf.Tensor2D;
  xAll: tf.Tensor2D;
  yAll: tf.Tensor2D;
  xHeldOut: tf.Tensor2D;
  heldOutLabels: Int32Array;
  nTrain: number;
  nHeldOut: number;
}

/** Moves a split into tensors; dispose with {@link disposeSeedData}. */
export function seedData(train: MnistData, heldOut: MnistData): SeedData {
  const xTrain = tf.tensor2d(train.xs, [train.n, MNIST_PIXELS]);
  const yTrain = tf.tensor2d(train.ys, [train.n, MNIST_CLASSES]);
  const xHeldOut = tf.tensor2d(heldOut.xs, [heldOut.n, MNIST_PIXELS]);
  const yHeldOut = tf.tensor2d(heldOut.ys, [heldOut.n, MNIST_CLASSES]);
  const xAll = tf.concat([xTrain, xHeldOut]) as tf.Tensor2D;
  const yAll = tf.concat([yTrain, yHeldOut]) as tf.Tensor2D;
  yHeldOut.dispose();
  return {
    xTrain,
    yTrain,
    xAll,
    yAll,
    xHeldOut,
    heldOutLabels: heldOut.labels,
    nTrain: train.n,
    nHeldOut: heldOut.n,
  };
}

/** Frees the tensors of {@link seedData}. */
export function disposeSeedData(d: SeedData): void {
  tf.dispose([d.xTrain, d.yTrain, d.xAll, d.yAll, d.xHeldOut]);
}

// Keras clips probabilities to [ε, 1 − ε] with ε = 1e-7 before the log in categoricalCrossentropy.
const EPSILON = 1e-7;

/**
 * Cross-entropy (the data term only: no L2 penalty) and accuracy of the train and held-out parts of
 * `d.xAll`, from one inference-mode predict over both. One download of four numbers.
 */
export function evaluate(model: tf.LayersModel, d: SeedData): EpochMetrics {
  const values = tf.tidy(() => {
    const probs = model.predict(d.xAll, { batchSize: d.nTrain + d.nHeldOut }) as tf.Tensor2D;
    const logP = tf.log(tf.clipByValue(probs, EPSILON, 1 - EPSILON));
    const loss = tf.neg(tf.sum(tf.mul(d.yAll, logP), 1));
    const correct = tf.cast(tf.equal(tf.argMax(probs, 1), tf.argMax(d.yAll, 1)), 'float32');
    // Sums, divided in double precision below: a float32 mean of 0/1 values prints 0.9005 as
    // 0.90049994.
    const part = (t: tf.Tensor, start: number, size: number) =>
      tf.sum(tf.slice(t, [start], [size]));
    return tf
      .stack([
        part(loss, 0, d.nTrain),
        part(correct, 0, d.nTrain),
        part(loss, d.nTrain, d.nHeldOut),
        part(correct, d.nTrain, d.nHeldOut),
      ])
      .dataSync();
  });
  return {
    trainLoss: values[0] / d.nTrain,
    trainAcc: values[1] / d.nTrain,
    heldOutLoss: values[2] / d.nHeldOut,
    heldOutAcc: values[3] / d.nHeldOut,
  };
}

/**
 * Trains `model` for `orders.length` epochs, visiting the training set in the given orders, and
 * evaluates after every epoch. `onEpoch` is called after each epoch (for a progress bar).
 */
export async function train(
  model: tf.LayersModel,
  d: SeedData,
  orders: readonly Int32Array[],
  o: ModelOptions & TrainOptions,
  onEpoch: (epoch: number, m: EpochMetrics) => void = () => {},
): Promise<{ curve: EpochMetrics[]; fitLoss: number[] }> {
  const optimizer = tf.train.adam(o.learningRate);
  model.compile({ optimizer, loss: 'categoricalCrossentropy' });
  const curve: EpochMetrics[] = [];
  const fitLoss: number[] = [];
  try {
    for (let epoch = 0; epoch < orders.length; epoch++) {
      const order = tf.tensor1d(orders[epoch], 'int32');
      const xs = tf.gather(d.xTrain, order);
      const ys = tf.gather(d.yTrain, order);
      try {
        const history = await model.fit(xs, ys, {
          epochs: 1,
          batchSize: o.batchSize,
          shuffle: false,
          verbose: 0,
          // The default yields to the event loop after every batch, which costs a third of the time
          // of a small MLP's epoch; progress is reported per epoch anyway.
          yieldEvery: 'never',
        });
        fitLoss.push(Number(history.history.loss[0]));
      } finally {
        tf.dispose([order, xs, ys]);
      }
      const m = evaluate(model, d);
      curve.push(m);
      onEpoch(epoch + 1, m);
    }
  } finally {
    optimizer.dispose();
  }
  return { curve, fitLoss };
}

/** Monte-Carlo dropout on the held-out set, digit by digit. */
export interface McResult {
  samples: number;
  /** Predictive entropy (nats) of the MC mean of each held-out digit. */
  entropy: number[];
  /** Whether the MC mean's arg max is the digit's label. */
  correct: boolean[];
  /** Entropy (nats) of the deterministic (inference-mode) prediction, for comparison. */
  deterministicEntropy: number[];
  /** Whether the deterministic prediction is right. */
  deterministicCorrect: boolean[];
  /** Mean over digits of the MC variance of the predicted class's probability. */
  meanVarianceOfPredicted: number;
}

function entropyRows(probs: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() =>
    tf.neg(tf.sum(tf.mul(probs, tf.log(tf.clipByValue(probs, EPSILON, 1))), 1)),
  ) as tf.Tensor1D;
}

/** `mcPredict` with `samples` passes, seeded, on the held-out digits. */
export function monteCarlo(
  model: tf.LayersModel,
  d: SeedData,
  samples: number,
  seed: number,
): McResult {
  const { mean, variance } = mcPredict(model, d.xHeldOut, {
    samples,
    seed,
    batchSize: d.nHeldOut,
  });
  try {
    const [entropy, predicted, varOfPredicted, detEntropy, detPredicted] = tf.tidy(() => {
      const argMax = tf.argMax(mean, 1);
      const picked = tf.sum(tf.mul(variance, tf.oneHot(argMax, MNIST_CLASSES)), 1);
      const det = model.predict(d.xHeldOut, { batchSize: d.nHeldOut }) as tf.Tensor2D;
      return [
        entropyRows(mean as tf.Tensor2D),
        argMax,
        picked,
        entropyRows(det),
        tf.argMax(det, 1),
      ];
    });
    const out: McResult = {
      samples,
      entropy: Array.from(entropy.dataSync()),
      correct: Array.from(predicted.dataSync(), (p, i) => p === d.heldOutLabels[i]),
      deterministicEntropy: Array.from(detEntropy.dataSync()),
      deterministicCorrect: Array.from(detPredicted.dataSync(), (p, i) => p === d.heldOutLabels[i]),
      meanVarianceOfPredicted: tf.tidy(() => tf.mean(varOfPredicted).dataSync()[0]),
    };
    tf.dispose([entropy, predicted, varOfPredicted, detEntropy, detPredicted]);
    return out;
  } finally {
    tf.dispose([mean, variance]);
  }
}

/**
 * Runs `fn` with `Math.random` replaced by a seeded stream, so randomness we cannot seed directly
 * (the built-in Dropout's masks) is reproducible too. Restored afterwards.
 */
export async function withSeededMathRandom<T>(seed: number, fn: () => Promise<T>): Promise<T> {
  const original = Math.random;
  Math.random = mulberry32(seed);
  try {
    return await fn();
  } finally {
    Math.random = original;
  }
}

/** Everything one (seed, configuration) task produces. */
export interface TaskResult {
  run: RunResult & { metrics: RunMetrics };
  /** Monte-Carlo dropout on the held-out digits, for the configuration that gets it. */
  mc: McResult | null;
  /** Tensors alive after the task minus before it (0 unless something leaks). */
  leaked: number;
}

/** Settings of a task: the model, the loop, the split and Monte-Carlo dropout. */
export interface TaskOptions extends ModelOptions, TrainOptions {
  trainSize: number;
  heldOutSize: number;
  mcSamples: number;
  /** The configuration whose trained model gets Monte-Carlo dropout. */
  mcConfig: string;
}

/**
 * A seed's data, initial weights and epoch orders, built once and shared by every configuration
 * of the seed that runs in this process.
 */
export class SeedCache {
  private readonly seeds = new Map<
    number,
    { data: SeedData; initial: tf.Tensor[][]; orders: Int32Array[] }
  >();

  constructor(private readonly o: TaskOptions) {}

  get(seed: number) {
    let entry = this.seeds.get(seed);
    if (!entry) {
      const split = mnistSplit({
        trainPerClass: this.o.trainSize / 10,
        heldOutPerClass: this.o.heldOutSize / 10,
        seed,
      });
      const data = seedData(split.train, split.heldOut);
      entry = {
        data,
        initial: initialWeights(this.o, seed),
        orders: epochOrders(data.nTrain, this.o.epochs, seed),
      };
      this.seeds.set(seed, entry);
    }
    return entry;
  }

  dispose(): void {
    for (const { data, initial } of this.seeds.values()) {
      disposeSeedData(data);
      tf.dispose(initial.flat());
    }
    this.seeds.clear();
  }
}

/**
 * Trains configuration `config` for seed `seed`: the result depends on (seed, config) only, not on
 * the process or on what ran before, so tasks can run in any order on any worker.
 */
export async function runTask(
  cache: SeedCache,
  o: TaskOptions,
  seed: number,
  config: string,
  onEpoch: (epoch: number, m: EpochMetrics) => void = () => {},
): Promise<TaskResult> {
  const { data, initial, orders } = cache.get(seed);
  const before = tf.memory().numTensors;
  const t0 = Date.now();
  const model = buildModel(config, o, seed);
  let mc: McResult | null = null;
  let curve: EpochMetrics[];
  let fitLoss: number[];
  try {
    copyInitialWeights(model, initial);
    ({ curve, fitLoss } = await withSeededMathRandom(seed, () =>
      train(model, data, orders, o, onEpoch),
    ));
    if (config === o.mcConfig) mc = monteCarlo(model, data, o.mcSamples, seed);
  } finally {
    model.dispose();
  }
  const seconds = (Date.now() - t0) / 1000;
  return {
    run: { config, seed, curve, fitLoss, seconds, metrics: runMetrics(curve) },
    mc,
    leaked: tf.memory().numTensors - before,
  };
}
