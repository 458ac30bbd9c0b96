/**
 * Monte-Carlo dropout (`mcPredict`) on the held-out digits of a trained model: predictive entropy
 * of the MC mean and of the deterministic prediction, digit by digit.
 */
import * as tf from '@tensorflow/tfjs';
import { mcPredict } from 'tfjs-dropnorm';
import { MNIST_CLASSES } from '../lib/mnist';
import { EPSILON, SeedData } from '../lib/training';

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
