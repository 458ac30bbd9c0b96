/**
 * Runs a function on a model and puts its non-trainable weights back afterwards. A training-mode
 * forward pass updates state (BatchNorm's moving mean and variance, our BatchNorm's batch counter);
 * diagnostics must observe the model, not change it.
 */
import * as tf from '@tensorflow/tfjs';

/** Runs `fn`, then restores every non-trainable weight of `model` to its value before `fn`. */
export function withFrozenState<T>(model: tf.LayersModel, fn: () => T): T {
  const state = model.nonTrainableWeights;
  const saved = state.map((w) => tf.clone(w.read()));
  try {
    return fn();
  } finally {
    state.forEach((w, i) => w.write(saved[i]));
    tf.dispose(saved);
  }
}
