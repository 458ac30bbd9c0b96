import * as tf from '@tensorflow/tfjs';
import { OptionSpec, invalidArgument, optionSpec } from '../errors';
import {
  checkNoiseShapeArg,
  checkNoiseShapeFits,
  dropout,
  resolveNoiseShape,
} from '../ops/dropout';
import { ActivationNoiseLayer, StochasticLayer, StochasticLayerArgs } from './stochastic';
import { singleShape } from './util';

/** How dropout keeps the expected activation: scale in training, or scale at inference. */
export type DropoutMode = 'inverted' | 'classic';

const MODES: readonly DropoutMode[] = ['inverted', 'classic'];

/** Arguments of {@link Dropout}. */
export interface DropoutArgs extends StochasticLayerArgs {
  /**
   * Shape of the mask, broadcast against the input; `null` entries take the input's dimension
   * (e.g. `[null, 1, null]` shares one mask over the time axis). Default: the input's shape.
   */
  noiseShape?: (number | null)[] | null;
  /**
   * `'inverted'` (default): training y = x ⊙ m/(1−p), inference y = x.
   * `'classic'` (Srivastava et al. 2014): training y = x ⊙ m, inference y = (1−p)·x.
   */
  mode?: DropoutMode;
}

/**
 * Dropout (Srivastava et al. 2014, "Dropout: A Simple Way to Prevent Neural Networks from
 * Overfitting", JMLR 15): each unit is zeroed with probability p = `rate`, m ~ Bernoulli(1−p).
 *
 * - inverted (default): training y = x ⊙ m / (1−p), inference y = x;
 * - classic (the paper's formulation): training y = x ⊙ m, inference y = (1−p)·x.
 *
 * Differences from `tf.layers.dropout` (tfjs 4.22): with a seed, the built-in draws the *same* mask
 * at every call (it passes its one seed to every draw), so a seeded model drops the same units at
 * every step; here a seed gives a reproducible sequence of masks, new at every call, whose first
 * mask equals the built-in's. Also: classic mode, and rates outside [0, 1) or a `noiseShape` that
 * does not broadcast are errors (the built-in clamps the rate).
 */
export class Dropout extends ActivationNoiseLayer {
  /** Serialization name: distinct from the built-in's 'Dropout', which it must not replace. */
  static className = 'DropnormDropout';
  /** Constructor arguments: {@link StochasticLayer.argTypes} plus `noiseShape` and `mode`. */
  static override readonly argTypes: OptionSpec = {
    ...StochasticLayer.argTypes,
    ...optionSpec<Omit<DropoutArgs, keyof StochasticLayerArgs>>({
      noiseShape: 'shape|null',
      mode: 'string',
    }),
  };
  static override readonly acceptedArgs: readonly string[] = Object.keys(Dropout.argTypes);

  readonly noiseShape: (number | null)[] | null;
  readonly mode: DropoutMode;

  constructor(args: DropoutArgs) {
    super(args);
    this.noiseShape = args.noiseShape ?? null;
    this.mode = args.mode ?? 'inverted';
    if (!MODES.includes(this.mode)) {
      throw invalidArgument(
        this.describe(),
        'mode',
        args.mode,
        "to be 'inverted' or 'classic'",
        "'inverted' scales by 1/(1−rate) in training; 'classic' scales by (1−rate) at inference.",
      );
    }
    checkNoiseShapeArg(this.describe(), args.noiseShape);
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    checkNoiseShapeFits(this.describe(), singleShape(inputShape, this.describe()), this.noiseShape);
    this.built = true;
  }

  /** Classic dropout scales by (1 − rate) at inference; inverted dropout is the identity. */
  protected override inference(x: tf.Tensor): tf.Tensor {
    return this.mode === 'classic' ? tf.mul(x, 1 - this.rate) : x;
  }

  protected override noise(x: tf.Tensor, seed: number | undefined): tf.Tensor {
    const noiseShape = resolveNoiseShape(x.shape, this.noiseShape, this.describe());
    return dropout(x, this.rate, { noiseShape, seed, mode: this.mode });
  }

  /** The layer's config: rate, seed, `noiseShape` and `mode`, plus the base Layer config. */
  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), noiseShape: this.noiseShape, mode: this.mode };
  }
}
