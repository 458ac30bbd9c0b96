/**
 * Spatial dropout for sequences, images and volumes: the three differ only in the input rank, so
 * they share one file, as in Keras (`keras/src/layers/regularization/spatial_dropout.py`).
 */
import * as tf from '@tensorflow/tfjs';
import { OptionSpec, invalidArgument, optionSpec } from '../errors';
import { DataFormat, spatialDropout } from '../ops/dropout';
import { ActivationNoiseLayer, StochasticLayer, StochasticLayerArgs } from './stochastic';
import { checkDataFormat, singleShape } from './util';

/** Arguments of {@link SpatialDropout1D}, {@link SpatialDropout2D} and {@link SpatialDropout3D}. */
export interface SpatialDropoutArgs extends StochasticLayerArgs {
  /** Where the channels are: `'channelsLast'` (default, `[N, …, C]`) or `'channelsFirst'`. */
  dataFormat?: DataFormat;
}

/**
 * Spatial dropout (Tompson et al. 2015, "Efficient Object Localization Using Convolutional
 * Networks", arXiv:1411.4280): whole channels are dropped, y = x ⊙ m / (1−p) with one
 * m ~ Bernoulli(1−p) per (sample, channel), broadcast over the spatial axes. Adjacent activations
 * of a feature map are strongly correlated, so element-wise dropout barely regularizes them.
 * Inference is the identity.
 */
abstract class SpatialDropoutBase extends ActivationNoiseLayer {
  /** Constructor arguments: {@link StochasticLayer.argTypes} plus `dataFormat`. */
  static override readonly argTypes: OptionSpec = {
    ...StochasticLayer.argTypes,
    ...optionSpec<Omit<SpatialDropoutArgs, keyof StochasticLayerArgs>>({ dataFormat: 'string' }),
  };
  static override readonly acceptedArgs: readonly string[] = Object.keys(
    SpatialDropoutBase.argTypes,
  );
  readonly dataFormat: DataFormat;
  /** Number of spatial axes: 1, 2 or 3. */
  protected abstract readonly spatialRank: number;

  constructor(args: SpatialDropoutArgs) {
    super(args);
    this.dataFormat = checkDataFormat(this.describe(), args.dataFormat);
  }

  private layout(): string {
    const spatial = ['length', 'height, width', 'depth, height, width'][this.spatialRank - 1];
    return this.dataFormat === 'channelsFirst'
      ? `[batch, channels, ${spatial}]`
      : `[batch, ${spatial}, channels]`;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = singleShape(inputShape, this.describe());
    const rank = this.spatialRank + 2;
    if (shape.length !== rank) {
      throw invalidArgument(
        this.describe(),
        'input rank',
        shape.length,
        `to be ${rank} (${this.layout()})`,
        `Received input shape ${JSON.stringify(shape)}. Use spatialDropout1d for rank 3, ` +
          'spatialDropout2d for rank 4, spatialDropout3d for rank 5, dropout otherwise.',
      );
    }
    this.inputSpec = [new tf.InputSpec({ ndim: rank })];
    this.built = true;
  }

  protected override noise(x: tf.Tensor, seed: number | undefined): tf.Tensor {
    return spatialDropout(x, this.rate, { dataFormat: this.dataFormat, seed });
  }

  /** The layer's config: rate, seed and `dataFormat`, plus the base Layer config. */
  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), dataFormat: this.dataFormat };
  }
}

/**
 * Spatial dropout over sequences `[batch, steps, channels]` (or `[batch, channels, steps]`):
 * drops whole channels, y = x ⊙ m / (1−p) with one m per (sample, channel). Channels-last with a seed, the first call
 * equals `tf.layers.spatialDropout1d`'s; the built-in has no channels-first and repeats its seeded
 * mask at every call.
 */
export class SpatialDropout1D extends SpatialDropoutBase {
  /** Serialization name: distinct from the built-in's 'SpatialDropout1D'. */
  static className = 'DropnormSpatialDropout1D';
  protected readonly spatialRank = 1;
}

/**
 * Spatial dropout over images `[batch, height, width, channels]` (or channels-first): drops whole
 * feature maps, as Keras's `SpatialDropout2D` (tfjs has none).
 */
export class SpatialDropout2D extends SpatialDropoutBase {
  static className = 'DropnormSpatialDropout2D';
  protected readonly spatialRank = 2;
}

/**
 * Spatial dropout over volumes `[batch, depth, height, width, channels]` (or channels-first):
 * drops whole feature volumes, as Keras's `SpatialDropout3D` (tfjs has none).
 */
export class SpatialDropout3D extends SpatialDropoutBase {
  static className = 'DropnormSpatialDropout3D';
  protected readonly spatialRank = 3;
}
