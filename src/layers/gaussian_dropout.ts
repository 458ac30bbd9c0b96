import * as tf from '@tensorflow/tfjs';
import { gaussianDropout } from '../ops/dropout';
import { ActivationNoiseLayer, StochasticLayerArgs } from './stochastic';

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
export class GaussianDropout extends ActivationNoiseLayer {
  /** Serialization name: distinct from the built-in's 'GaussianDropout'. */
  static className = 'DropnormGaussianDropout';

  constructor(args: GaussianDropoutArgs) {
    super(args);
  }

  protected override noise(x: tf.Tensor, seed: number | undefined): tf.Tensor {
    return gaussianDropout(x, this.rate, seed);
  }
}
