/**
 * Uout, the remedy Li et al. (CVPR 2019, "Understanding the Disharmony between Dropout and Batch
 * Normalization by Variance Shift", §5) propose for dropout before BN: multiplicative uniform noise
 * y = x·(1 + u), u ~ U(−β, β), in training; the identity at inference. E[y] = x and
 * Var[y | x] = x²·β²/3, against x²·p/(1 − p) for inverted dropout at rate p (1 at p = 0.5 vs
 * 1/12 for β = 0.5): the smaller the noise variance, the smaller the shift between the variance
 * the BN learns in training and the one it sees at inference.
 *
 * A local layer of the experiment, not a pack layer: one configuration uses it and nothing else in
 * the pack needs it. It reuses the pack's {@link StochasticLayer} (seed stream, training flag, Monte
 * Carlo mode) with `rate` as β, and is found by the variance-shift probe like any dropout.
 */
import * as tf from '@tensorflow/tfjs';
import { StochasticLayer, StochasticLayerArgs } from 'tfjs-dropnorm';

/** See the module doc; `rate` is β in [0, 1). */
export class Uout extends StochasticLayer {
  static className = 'ExperimentUout';

  constructor(args: StochasticLayerArgs) {
    super(args);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      if (!this.noiseActive(kwargs)) return x;
      const seed = this.nextSeed();
      if (this.rate === 0) return x;
      return tf.mul(x, tf.randomUniform(x.shape, 1 - this.rate, 1 + this.rate, 'float32', seed));
    });
  }
}
