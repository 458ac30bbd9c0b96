import * as tf from '@tensorflow/tfjs';
import { invalidArgument } from '../errors';
import { dropout, resolveNoiseShape } from '../ops/dropout';
import { StochasticLayer, StochasticLayerArgs } from './stochastic';
import { Kwargs, singleShape, singleTensor } from './util';

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
export class Dropout extends StochasticLayer {
  /** Serialization name: distinct from the built-in's 'Dropout', which it must not replace. */
  static className = 'DropnormDropout';

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
      // Unknown (null) input dimensions are checked again on the real tensor in call().
      const known = shape.map((d, i) => d ?? this.noiseShape?.[i] ?? 1);
      resolveNoiseShape(known, this.noiseShape, this.describe());
    }
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = singleTensor(inputs);
      if (!this.noiseActive(kwargs)) {
        return this.mode === 'classic' ? tf.mul(x, 1 - this.rate) : x;
      }
      const seed = this.nextSeed();
      if (this.rate === 0) return x;
      const noiseShape = resolveNoiseShape(x.shape, this.noiseShape, this.describe());
      return dropout(x, this.rate, { noiseShape, seed, mode: this.mode });
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), noiseShape: this.noiseShape, mode: this.mode };
  }
}
