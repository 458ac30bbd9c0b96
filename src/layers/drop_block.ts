import * as tf from '@tensorflow/tfjs';
import { OptionSpec, invalidArgument, optionSpec } from '../errors';
import { DataFormat, dropBlock2d } from '../ops/dropout';
import { StochasticLayer, StochasticLayerArgs } from './stochastic';
import { Kwargs, checkDataFormat, singleShape, singleTensor } from './util';

/** Arguments of {@link DropBlock2D}. */
export interface DropBlock2DArgs extends StochasticLayerArgs {
  /** Side b of the square blocks dropped (the paper's `block_size`); default 7, as in the paper. */
  blockSize?: number;
  /** Where the channels are: `'channelsLast'` (default) or `'channelsFirst'`. */
  dataFormat?: DataFormat;
}

/**
 * DropBlock (Ghiasi et al. 2018, "DropBlock: A regularization method for convolutional networks",
 * arXiv:1810.12890) for feature maps `[batch, height, width, channels]` (or channels-first).
 *
 * Training (Algorithm 1): block seeds ~ Bernoulli(γ) at the positions where a b×b block fits inside
 * the map, independently per sample and channel, with
 *
 *   γ = p / b² · (H·W) / ((H − b + 1)(W − b + 1))     (eq. 1, p = `rate`, b = `blockSize`);
 *
 * every unit of each seeded block is zeroed, and the output is renormalized by the kept fraction,
 * y = x ⊙ M · count(M) / count_ones(M). Overlapping blocks make the dropped fraction a little below
 * p (0.0947 expected for p = 0.1, b = 5 on 32×32). Inference is the identity. tfjs has no equivalent;
 * spatial dropout drops whole channels, plain dropout single units.
 */
export class DropBlock2D extends StochasticLayer {
  /** Serialization name of the pack's DropBlock. */
  static className = 'DropnormDropBlock2D';
  /** Constructor arguments: {@link StochasticLayer.argTypes} plus `blockSize` and `dataFormat`. */
  static override readonly argTypes: OptionSpec = {
    ...StochasticLayer.argTypes,
    ...optionSpec<Omit<DropBlock2DArgs, keyof StochasticLayerArgs>>({
      blockSize: 'number',
      dataFormat: 'string',
    }),
  };
  static override readonly acceptedArgs: readonly string[] = Object.keys(DropBlock2D.argTypes);

  readonly blockSize: number;
  readonly dataFormat: DataFormat;

  constructor(args: DropBlock2DArgs) {
    super(args);
    this.blockSize = args.blockSize ?? 7;
    if (!(Number.isInteger(this.blockSize) && this.blockSize >= 1)) {
      throw invalidArgument(
        this.describe(),
        'blockSize',
        args.blockSize,
        'to be a positive integer',
        'The paper uses 7 on ResNet-50 (3 to 7 work; 1 is plain dropout).',
      );
    }
    this.dataFormat = checkDataFormat(this.describe(), args.dataFormat);
  }

  /** Throws unless the shape is rank 4 with both spatial sides (when known) ≥ blockSize. */
  private checkShape(shape: readonly (number | null)[]): void {
    const layout =
      this.dataFormat === 'channelsFirst'
        ? '[batch, channels, height, width]'
        : '[batch, height, width, channels]';
    if (shape.length !== 4) {
      throw invalidArgument(
        this.describe(),
        'input rank',
        shape.length,
        `to be 4 (${layout})`,
        `Received input shape ${JSON.stringify(shape)}.`,
      );
    }
    const [h, w] =
      this.dataFormat === 'channelsFirst' ? [shape[2], shape[3]] : [shape[1], shape[2]];
    const smallest = Math.min(h ?? Infinity, w ?? Infinity);
    if (this.blockSize > smallest) {
      throw invalidArgument(
        this.describe(),
        'blockSize',
        this.blockSize,
        `to be at most the feature map's height and width (${h}×${w})`,
        `Received input shape ${JSON.stringify(shape)} (${layout}). Use a smaller blockSize, ` +
          'or put the layer before the map is downsampled that far.',
      );
    }
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = singleShape(inputShape, this.describe());
    this.checkShape(shape);
    this.inputSpec = [new tf.InputSpec({ ndim: 4 })];
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = singleTensor(inputs, this.describe());
      if (!this.noiseActive(kwargs)) return x;
      this.checkShape(x.shape);
      const seed = this.nextSeed();
      if (this.rate === 0) return x;
      return dropBlock2d(x, this.rate, this.blockSize, { dataFormat: this.dataFormat, seed });
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), blockSize: this.blockSize, dataFormat: this.dataFormat };
  }
}
