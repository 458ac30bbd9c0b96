import * as tf from '@tensorflow/tfjs';
import { dropPath } from '../ops/dropout';
import { ActivationNoiseLayer, StochasticLayerArgs } from './stochastic';
import { singleShape } from './util';
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
export class DropPath extends ActivationNoiseLayer {
  /** Serialization name of the pack's DropPath. */
  static className = 'DropnormDropPath';

  constructor(args: DropPathArgs) {
    super(args);
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = singleShape(inputShape, this.describe());
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

  protected override noise(x: tf.Tensor, seed: number | undefined): tf.Tensor {
    return dropPath(x, this.rate, seed);
  }
}
