import * as tf from '@tensorflow/tfjs';
import {
  BASE_LAYER_ARGS,
  BASE_LAYER_ARG_TYPES,
  OptionSpec,
  describeLayer,
  invalidArgument,
  optionSpec,
} from '../errors';
import { rmsNorm } from '../ops/rms_norm';
import { Kwargs, checkEpsilon, checkLayerArgs, singleShape, singleTensor } from './util';

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

/** Arguments of {@link RMSNorm}: Keras 3's `RMSNormalization` arguments. */
export interface RMSNormArgs extends LayerArgs {
  /**
   * The axis, or list of axes, the mean square is taken over (and the `scale` weight spans), any
   * but the batch axis 0. Default -1 (the features).
   */
  axis?: number | number[];
  /** ε added to the mean square, default 1e-6 (Keras 3). */
  epsilon?: number;
}

/**
 * Root Mean Square Layer Normalization (Zhang & Sennrich 2019, "Root Mean Square Layer
 * Normalization", arXiv:1910.07467, Eq. 4) with Keras 3's semantics (`keras.layers.RMSNormalization`):
 *
 *   y = x · rsqrt(mean(x², axes) + ε) · scale
 *
 * per sample (and per position on the axes not reduced): layer normalization without the centring
 * and without an offset, the normalization of T5, LLaMA and Gemma blocks. `scale` is one learned
 * weight of x's sizes along the axes (ones initially), named `scale` as Keras's, so converted Keras
 * models load their weights. Training and inference compute the same thing; the gradient is a
 * fused analytic backward (`ops.rmsNorm`). A mask passes through: the statistics are per position
 * over the feature axes, so padded positions do not touch the others (unless `axis` spans the time
 * axis, where, as in Keras, the mask is not consulted). Serialized as `RMSNormalization`, Keras 3's
 * class name.
 */
export class RMSNorm extends tf.layers.Layer {
  /** Serialization name: Keras 3's, which no tfjs built-in uses. */
  static className = 'RMSNormalization';
  /** The class's name in error messages (its serialization name is Keras's). */
  static publicName = 'RMSNorm';
  /**
   * The constructor arguments (and config keys) accepted, with their types: the base
   * `tf.layers.Layer` arguments, `axis` (an integer or a list of them: the list's entries and the
   * batch axis are checked first, with the more precise message) and `epsilon` (a number, > 0
   * checked after); any other name or type is an error (`checkLayerArgs`).
   */
  static readonly argTypes: OptionSpec = {
    ...BASE_LAYER_ARG_TYPES,
    ...optionSpec<Omit<RMSNormArgs, (typeof BASE_LAYER_ARGS)[number]>>({
      axis: 'integer|array',
      epsilon: 'number',
    }),
  };
  /** The names of {@link RMSNorm.argTypes}: anything else is an error. */
  static readonly acceptedArgs: readonly string[] = Object.keys(RMSNorm.argTypes);

  /** The axis or axes as given. */
  readonly axis: number | number[];
  readonly epsilon: number;
  private scaleWeight: tf.LayerVariable | null = null;

  constructor(args: RMSNormArgs = {}) {
    super(args as tf.serialization.ConfigDict);
    const owner = describeLayer(this);
    // axis before the shared check: "an integer or a non-empty list of integers" says more than
    // the type's "an integer or an array" (it also rejects [] and ['1']).
    const axis = (args != null && typeof args === 'object' ? args.axis : undefined) ?? -1;
    const list = Array.isArray(axis) ? axis : [axis];
    if (list.length === 0 || !list.every((a) => typeof a === 'number' && Number.isInteger(a))) {
      throw invalidArgument(
        owner,
        'axis',
        args.axis,
        'to be an integer or a non-empty list of integers',
        'Use -1 for the features axis, or e.g. [-2, -1] for the last two.',
      );
    }
    checkLayerArgs(this, args);
    this.supportsMasking = true;
    if (list.includes(0)) {
      throw invalidArgument(
        owner,
        'axis',
        args.axis,
        'not to include the batch axis 0 (the statistics are per sample)',
        'Use -1 for the features axis.',
      );
    }
    this.axis = Array.isArray(axis) ? [...axis] : axis;
    this.epsilon = checkEpsilon(owner, args.epsilon, 1e-6);
  }

  /** The reduced axes, non-negative and sorted, for an input of rank `rank` (checked). */
  private axes(shape: tf.Shape): number[] {
    const rank = shape.length;
    const list = Array.isArray(this.axis) ? this.axis : [this.axis];
    const axes = list.map((a) => (a < 0 ? a + rank : a)).sort((a, b) => a - b);
    const bad = axes.some((a, i) => a <= 0 || a >= rank || axes[i - 1] === a);
    if (bad) {
      throw invalidArgument(
        describeLayer(this),
        'axis',
        this.axis,
        `to be distinct axes in [${1 - rank}, ${rank}) and not the batch axis, for an input of ` +
          `rank ${rank} (shape ${JSON.stringify(shape)})`,
        'Use -1 for the features axis.',
      );
    }
    return axes;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const owner = describeLayer(this);
    const shape = singleShape(inputShape, owner);
    if (shape.length < 2) {
      throw invalidArgument(
        owner,
        'input rank',
        shape.length,
        'to be at least 2 ([batch, …, features])',
        `Received input shape ${JSON.stringify(shape)}.`,
      );
    }
    const axes = this.axes(shape);
    const undefinedAxis = axes.find((a) => shape[a] == null);
    if (undefinedAxis !== undefined) {
      throw invalidArgument(
        owner,
        `input shape[${undefinedAxis}] (a dimension of axis ${JSON.stringify(this.axis)})`,
        null,
        'to be defined (the scale weight spans it)',
        `Received input shape ${JSON.stringify(shape)}; give the input layer fixed sizes there.`,
      );
    }
    const sizes = axes.map((a) => shape[a] as number);
    this.inputSpec = [
      new tf.InputSpec({
        ndim: shape.length,
        axes: Object.fromEntries(axes.map((a, i) => [a, sizes[i]])),
      }),
    ];
    this.scaleWeight = this.addWeight('scale', sizes, 'float32', tf.initializers.ones());
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    void kwargs;
    const x = singleTensor(inputs, describeLayer(this));
    const axes = this.axes(x.shape);
    return tf.tidy(() => rmsNorm(x, this.scaleWeight?.read() ?? null, axes, this.epsilon));
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    const axis = Array.isArray(this.axis) ? [...this.axis] : this.axis;
    return { ...super.getConfig(), axis, epsilon: this.epsilon };
  }
}
