import * as tf from '@tensorflow/tfjs';
import { dropPath } from '../ops/dropout';
import { StochasticLayer, StochasticLayerArgs } from './stochastic';
import { Kwargs, singleShape, singleTensor } from './util';
import { invalidArgument } from '../errors';

/** Arguments of {@link DropPath}. */
export type DropPathArgs = StochasticLayerArgs;

/**
 * DropPath, i.e. stochastic depth (Huang et al. 2016, "Deep Networks with Stochastic Depth",
 * arXiv:1603.09382), per sample as in timm's `drop_path`: the whole input of a sample is dropped
 * with probability p = `rate`, y = x ⊙ m / (1−p) with one m ~ Bernoulli(1−p) per sample.
 * Put it on a residual branch, `add([shortcut, dropPath.apply(branch)])`, so a dropped sample
 * skips the block. Inference is the identity. tfjs has no built-in equivalent.
 */
export class DropPath extends StochasticLayer {
  /** Serialization name of the pack's DropPath. */
  static className = 'DropnormDropPath';

  constructor(args: DropPathArgs) {
    super(args);
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = singleShape(inputShape);
    if (shape.length < 2) {
      throw invalidArgument(
        this.describe(),
        'input rank',
        shape.length,
        'to be at least 2 ([batch, …])',
        `Received input shape ${JSON.stringify(shape)}; the first axis is the sample axis.`,
      );
    }
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = singleTensor(inputs);
      if (!this.noiseActive(kwargs)) return x;
      const seed = this.nextSeed();
      if (this.rate === 0) return x;
      return dropPath(x, this.rate, seed);
    });
  }
}
