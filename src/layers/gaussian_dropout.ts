import * as tf from '@tensorflow/tfjs';
import { gaussianDropout } from '../ops/dropout';
import { StochasticLayer, StochasticLayerArgs } from './stochastic';
import { Kwargs, singleTensor } from './util';

/** Arguments of {@link GaussianDropout}. */
export type GaussianDropoutArgs = StochasticLayerArgs;

/**
 * Gaussian dropout (Srivastava et al. 2014, JMLR 15, §10 "Multiplicative Gaussian Noise"):
 * training y = x ⊙ ε with ε ~ N(1, p/(1−p)), the mean and variance of inverted Bernoulli
 * dropout's multiplier m/(1−p); E[y] = x, Var[y] = x²·p/(1−p). Inference is the identity.
 *
 * Same distribution as `tf.layers.gaussianDropout` (tested); in addition it takes a seed that gives
 * a reproducible sequence of noise draws, and rejects rates outside [0, 1).
 */
export class GaussianDropout extends StochasticLayer {
  /** Serialization name: distinct from the built-in's 'GaussianDropout'. */
  static className = 'DropnormGaussianDropout';

  constructor(args: GaussianDropoutArgs) {
    super(args);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = singleTensor(inputs);
      if (!this.noiseActive(kwargs)) return x;
      const seed = this.nextSeed();
      if (this.rate === 0) return x;
      return gaussianDropout(x, this.rate, seed);
    });
  }
}
