/**
 * Monte-Carlo dropout (`mcPredict` with `probabilities: 'categorical'`) on the held-out digits of
 * a trained model, digit by digit: the pack's predictive entropy H[ȳ], its split into the expected
 * entropy (aleatoric) and the mutual information (epistemic, BALD), and the entropy of the
 * deterministic prediction (`entropy`) for comparison.
 */
import * as tf from '@tensorflow/tfjs';
import { entropy, mcPredict } from 'tfjs-dropnorm';
import { MNIST_CLASSES } from '../lib/mnist';
import { SeedData } from '../lib/training';

/** Monte-Carlo dropout on the held-out set, digit by digit (nats). */
export interface McResult {
  samples: number;
  /** Predictive entropy H[ȳ] of the MC mean ȳ of each held-out digit. */
  entropy: number[];
  /** Expected entropy (1/T) Σ H[ŷ_t] of the samples: the aleatoric part. */
  expectedEntropy: number[];
  /** Mutual information H[ȳ] − (1/T) Σ H[ŷ_t] (BALD): the epistemic part. */
  mutualInformation: number[];
  /** Whether the MC mean's arg max is the digit's label. */
  correct: boolean[];
  /** Entropy of the deterministic (inference-mode) prediction, for comparison. */
  deterministicEntropy: number[];
  /** Whether the deterministic prediction is right. */
  deterministicCorrect: boolean[];
  /** Mean over digits of the MC variance of the predicted class's probability. */
  meanVarianceOfPredicted: number;
}

/** `mcPredict` with `samples` passes, seeded, on the held-out digits. */
export function monteCarlo(
  model: tf.LayersModel,
  d: SeedData,
  samples: number,
  seed: number,
): McResult {
  const mc = mcPredict<tf.Tensor>(model, d.xHeldOut, {
    samples,
    seed,
    batchSize: d.nHeldOut,
    probabilities: 'categorical',
  });
  const owned = [
    mc.mean,
    mc.variance,
    mc.predictiveEntropy!,
    mc.expectedEntropy!,
    mc.mutualInformation!,
  ];
  try {
    const [predicted, varOfPredicted, detEntropy, detPredicted] = tf.tidy(() => {
      const argMax = tf.argMax(mc.mean, 1);
      const picked = tf.sum(tf.mul(mc.variance, tf.oneHot(argMax, MNIST_CLASSES)), 1);
      const det = model.predict(d.xHeldOut, { batchSize: d.nHeldOut }) as tf.Tensor2D;
      return [argMax, picked, entropy(det), tf.argMax(det, 1)];
    });
    const out: McResult = {
      samples,
      entropy: Array.from(mc.predictiveEntropy!.dataSync()),
      expectedEntropy: Array.from(mc.expectedEntropy!.dataSync()),
      mutualInformation: Array.from(mc.mutualInformation!.dataSync()),
      correct: Array.from(predicted.dataSync(), (p, i) => p === d.heldOutLabels[i]),
      deterministicEntropy: Array.from(detEntropy.dataSync()),
      deterministicCorrect: Array.from(detPredicted.dataSync(), (p, i) => p === d.heldOutLabels[i]),
      meanVarianceOfPredicted: tf.tidy(() => tf.mean(varOfPredicted).dataSync()[0]),
    };
    tf.dispose([predicted, varOfPredicted, detEntropy, detPredicted]);
    return out;
  } finally {
    tf.dispose(owned);
  }
}
