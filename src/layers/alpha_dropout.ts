import * as tf from '@tensorflow/tfjs';
import {
  alphaDropout,
  checkNoiseShapeArg,
  checkNoiseShapeFits,
  resolveNoiseShape,
} from '../ops/dropout';
import { OptionSpec, optionSpec } from '../errors';
import { ActivationNoiseLayer, StochasticLayer, StochasticLayerArgs } from './stochastic';
import { singleShape } from './util';

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
export class AlphaDropout extends ActivationNoiseLayer {
  /** Serialization name: distinct from the built-in's 'AlphaDropout'. */
  static className = 'DropnormAlphaDropout';
  /** Constructor arguments: {@link StochasticLayer.argTypes} plus `noiseShape`. */
  static override readonly argTypes: OptionSpec = {
    ...StochasticLayer.argTypes,
    ...optionSpec<Omit<AlphaDropoutArgs, keyof StochasticLayerArgs>>({ noiseShape: 'shape|null' }),
  };
  static override readonly acceptedArgs: readonly string[] = Object.keys(AlphaDropout.argTypes);

  readonly noiseShape: (number | null)[] | null;

  constructor(args: AlphaDropoutArgs) {
    super(args);
    this.noiseShape = args.noiseShape ?? null;
    checkNoiseShapeArg(this.describe(), args.noiseShape);
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    checkNoiseShapeFits(this.describe(), singleShape(inputShape, this.describe()), this.noiseShape);
    this.built = true;
  }

  protected override noise(x: tf.Tensor, seed: number | undefined): tf.Tensor {
    const noiseShape = resolveNoiseShape(x.shape, this.noiseShape, this.describe());
    return alphaDropout(x, this.rate, { noiseShape, seed });
  }

  /** The layer's config: rate, seed and `noiseShape`, plus the base Layer config. */
  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), noiseShape: this.noiseShape };
  }
}
