import * as tf from '@tensorflow/tfjs';
import { alphaDropout, resolveNoiseShape } from '../ops/dropout';
import { StochasticLayer, StochasticLayerArgs } from './stochastic';
import { Kwargs, singleShape, singleTensor } from './util';
import { invalidArgument } from '../errors';

/** Arguments of {@link AlphaDropout}. */
export interface AlphaDropoutArgs extends StochasticLayerArgs {
  /** Shape of the keep mask, broadcast against the input (`null`: the input's dimension). */
  noiseShape?: (number | null)[] | null;
}

/**
 * Alpha dropout (Klambauer et al. 2017, "Self-Normalizing Neural Networks", arXiv:1706.02515),
 * for SELU networks: dropped units take SELU's negative saturation value α′ = −λα ≈ −1.7581, and an
 * affine map restores the input's mean 0 and variance 1:
 *
 *   y = a·(x ⊙ d + α′·(1 − d)) + b,  d ~ Bernoulli(1−q),
 *   a = ((1−q)(1 + q·α′²))^(−1/2),   b = −a·q·α′.
 *
 * Inference is the identity. `tf.layers.alphaDropout` (tfjs 4.22) sets dropped units to +λα
 * instead of −λα, so on standard-normal input its output mean is +0.32 at q = 0.1 and +0.91 at
 * q = 0.3 (tested); here mean and variance stay 0 and 1.
 */
export class AlphaDropout extends StochasticLayer {
  /** Serialization name: distinct from the built-in's 'AlphaDropout'. */
  static className = 'DropnormAlphaDropout';

  readonly noiseShape: (number | null)[] | null;

  constructor(args: AlphaDropoutArgs) {
    super(args);
    this.noiseShape = args.noiseShape ?? null;
    if (
      this.noiseShape != null &&
      (!Array.isArray(this.noiseShape) ||
        this.noiseShape.some((d) => d != null && !(Number.isInteger(d) && d >= 1)))
    ) {
      throw invalidArgument(
        this.describe(),
        'noiseShape',
        args.noiseShape,
        'to be an array of positive integers or nulls',
      );
    }
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = singleShape(inputShape);
    if (this.noiseShape != null) {
      const known = shape.map((d, i) => d ?? this.noiseShape?.[i] ?? 1);
      resolveNoiseShape(known, this.noiseShape, this.describe());
    }
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = singleTensor(inputs);
      if (!this.noiseActive(kwargs)) return x;
      const seed = this.nextSeed();
      if (this.rate === 0) return x;
      const noiseShape = resolveNoiseShape(x.shape, this.noiseShape, this.describe());
      return alphaDropout(x, this.rate, { noiseShape, seed });
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), noiseShape: this.noiseShape };
  }
}
