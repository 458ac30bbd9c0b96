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

/**
 * Runs `f` with tfjs's test-mode (IS_TEST) kernel leak check off. On wasm it reports a false leak
 * for every customGrad that saves tensors (tfjs's fused conv2d / matMul with bias, the pack's
 * BatchNorm): the engine saves clones, and wasm's Identity copies them. Tensor leaks are measured
 * with {@link leakedTensors} instead; the pack's kernels are checked with it on in
 * wasm_kernels.test.ts.
 */
export async function withoutLeakCheck<T>(f: () => Promise<T>): Promise<T> {
  tf.env().set('IS_TEST', false);
  try {
    return await f();
  } finally {
    tf.env().set('IS_TEST', true);
  }
}
