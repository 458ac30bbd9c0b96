/**
 * Training a classifier on one seed's MNIST split, the same way for every configuration of the
 * seed: the digits as tensors (train and held-out stacked so one inference-mode predict evaluates
 * both), one seeded permutation of the training set per epoch, Adam, and both sets evaluated after
 * every epoch.
 */
import * as tf from '@tensorflow/tfjs';
import { mixSeed } from 'tfjs-dropnorm';
import { CurvePoint } from './curves';
import { MNIST_CLASSES, MNIST_PIXELS, MnistData, mnistSplit } from './mnist';
import { mulberry32, SEED_PURPOSE, shuffleInPlace } from './random';

/** The tensors of one seed's split. */
export interface SeedData {
  xTrain: tf.Tensor2D;
  yTrain: tf.Tensor2D;
  xAll: tf.Tensor2D;
  yAll: tf.Tensor2D;
  xHeldOut: tf.Tensor2D;
  heldOutLabels: Int32Array;
  nTrain: number;
  nHeldOut: number;
  /** Validation digits, after the held-out ones in `xAll` (0: none). */
  nValidation: number;
}

/** Moves a split into tensors; dispose with {@link disposeSeedData}. */
export function seedData(train: MnistData, heldOut: MnistData, validation?: MnistData): SeedData {
  const xTrain = tf.tensor2d(train.xs, [train.n, MNIST_PIXELS]);
  const yTrain = tf.tensor2d(train.ys, [train.n, MNIST_CLASSES]);
  const xHeldOut = tf.tensor2d(heldOut.xs, [heldOut.n, MNIST_PIXELS]);
  const yHeldOut = tf.tensor2d(heldOut.ys, [heldOut.n, MNIST_CLASSES]);
  const nValidation = validation?.n ?? 0;
  const xVal = tf.tensor2d(validation?.xs ?? [], [nValidation, MNIST_PIXELS]);
  const yVal = tf.tensor2d(validation?.ys ?? [], [nValidation, MNIST_CLASSES]);
  const xAll = tf.concat([xTrain, xHeldOut, xVal]) as tf.Tensor2D;
  const yAll = tf.concat([yTrain, yHeldOut, yVal]) as tf.Tensor2D;
  tf.dispose([yHeldOut, xVal, yVal]);
  return {
    xTrain,
    yTrain,
    xAll,
    yAll,
    xHeldOut,
    heldOutLabels: heldOut.labels,
    nTrain: train.n,
    nHeldOut: heldOut.n,
    nValidation,
  };
}

/** Frees the tensors of {@link seedData}. */
export function disposeSeedData(d: SeedData): void {
  tf.dispose([d.xTrain, d.yTrain, d.xAll, d.yAll, d.xHeldOut]);
}

/** How many digits a seed's split holds: as many of each class, so multiples of 10. */
export interface SplitSizes {
  trainSize: number;
  heldOutSize: number;
  /** Validation digits for epoch selection (default 0). */
  validationSize?: number;
}

/**
 * Each seed's split as tensors ({@link seedData}) with what an experiment derives from it
 * (`extra`: epoch orders, initial weights, labels), built once per process at the first task of
 * the seed and shared by its other configurations; {@link dispose} frees it all.
 */
export class SeedDataCache<Extra extends object> {
  private readonly seeds = new Map<number, { data: SeedData } & Extra>();

  constructor(
    private readonly sizes: SplitSizes,
    private readonly extra: (seed: number, data: SeedData, train: MnistData) => Extra,
    private readonly disposeExtra: (extra: Extra) => void = () => {},
  ) {}

  get(seed: number): { data: SeedData } & Extra {
    let entry = this.seeds.get(seed);
    if (!entry) {
      const split = mnistSplit({
        trainPerClass: this.sizes.trainSize / 10,
        heldOutPerClass: this.sizes.heldOutSize / 10,
        validationPerClass: (this.sizes.validationSize ?? 0) / 10,
        seed,
      });
      const data = seedData(split.train, split.heldOut, split.validation);
      entry = { data, ...this.extra(seed, data, split.train) };
      this.seeds.set(seed, entry);
    }
    return entry;
  }

  dispose(): void {
    for (const entry of this.seeds.values()) {
      disposeSeedData(entry.data);
      this.disposeExtra(entry);
    }
    this.seeds.clear();
  }
}

/**
 * Runs one task's `work`, which frees what it builds (its model, its optimizer), and returns its
 * result with the wall time and the tensors still alive afterwards that were not before (0 unless
 * something leaks).
 */
export async function measuredRun<R>(
  work: () => Promise<R>,
): Promise<{ result: R; seconds: number; leaked: number }> {
  const before = tf.memory().numTensors;
  const t0 = Date.now();
  const result = await work();
  return {
    result,
    seconds: (Date.now() - t0) / 1000,
    leaked: tf.memory().numTensors - before,
  };
}

// Keras clips probabilities to [ε, 1 − ε] with ε = 1e-7 before the log in categoricalCrossentropy.
export const EPSILON = 1e-7;

/** The order in which each epoch visits the training set: one seeded permutation per epoch. */
export function epochOrders(n: number, epochs: number, seed: number): Int32Array[] {
  const random = mulberry32(mixSeed(seed, SEED_PURPOSE.epochOrder));
  return Array.from({ length: epochs }, () =>
    Int32Array.from(
      shuffleInPlace(
        Array.from({ length: n }, (_, i) => i),
        random,
      ),
    ),
  );
}

/**
 * Cross-entropy (the data term only: no L2 penalty) and accuracy of the train and held-out parts of
 * `d.xAll`, from one inference-mode predict over both (in batches of `batchSize`, default all at
 * once). One download of four numbers.
 */
export function evaluate(model: tf.LayersModel, d: SeedData, batchSize?: number): CurvePoint {
  const values = tf.tidy(() => {
    const probs = model.predict(d.xAll, {
      batchSize: batchSize ?? d.nTrain + d.nHeldOut + d.nValidation,
    }) as tf.Tensor2D;
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
        ...(d.nValidation > 0
          ? [
              part(loss, d.nTrain + d.nHeldOut, d.nValidation),
              part(correct, d.nTrain + d.nHeldOut, d.nValidation),
            ]
          : []),
      ])
      .dataSync();
  });
  return {
    trainLoss: values[0] / d.nTrain,
    trainAcc: values[1] / d.nTrain,
    heldOutLoss: values[2] / d.nHeldOut,
    heldOutAcc: values[3] / d.nHeldOut,
    ...(d.nValidation > 0
      ? { valLoss: values[4] / d.nValidation, valAcc: values[5] / d.nValidation }
      : {}),
  };
}

/** Options of {@link train}. */
export interface TrainLoopOptions {
  /** Adam learning rate. */
  learningRate: number;
  batchSize: number;
  /** Called after each epoch with its evaluation. */
  onEpoch?: (epoch: number, m: CurvePoint) => void;
  /** Called after each batch (for progress when an epoch is slow). */
  onBatch?: () => void;
  /** Batch size of the evaluation's predict (default: both sets at once). */
  evalBatchSize?: number;
}

/**
 * Trains `model` with Adam for `orders.length` epochs, visiting the training set in the given
 * orders, and evaluates both sets after every epoch.
 */
export async function train(
  model: tf.LayersModel,
  d: SeedData,
  orders: readonly Int32Array[],
  o: TrainLoopOptions,
): Promise<{ curve: CurvePoint[]; fitLoss: number[] }> {
  const optimizer = tf.train.adam(o.learningRate);
  model.compile({ optimizer, loss: 'categoricalCrossentropy' });
  const curve: CurvePoint[] = [];
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
          // of a small MLP's epoch.
          yieldEvery: 'never',
          ...(o.onBatch ? { callbacks: { onBatchEnd: async () => o.onBatch?.() } } : {}),
        });
        fitLoss.push(Number(history.history.loss[0]));
      } finally {
        tf.dispose([order, xs, ys]);
      }
      const m = evaluate(model, d, o.evalBatchSize);
      curve.push(m);
      o.onEpoch?.(epoch + 1, m);
    }
  } finally {
    optimizer.dispose();
  }
  return { curve, fitLoss };
}
