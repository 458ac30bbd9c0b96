/** Shared test helpers: numeric comparison and leak checks. */
import * as tf from '@tensorflow/tfjs';

/** max |a − b| over all elements (shapes must match). */
export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).toEqual(b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/** Runs `fn` and returns how many tensors it leaked. */
export async function leakedTensors(fn: () => unknown | Promise<unknown>): Promise<number> {
  const before = tf.memory().numTensors;
  await fn();
  return tf.memory().numTensors - before;
}
