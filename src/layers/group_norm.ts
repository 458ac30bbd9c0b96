import * as tf from '@tensorflow/tfjs';
import {
  BASE_LAYER_ARGS,
  BASE_LAYER_ARG_TYPES,
  KERAS_OBJECT,
  OptionSpec,
  describeLayer,
  invalidArgument,
  optionSpec,
} from '../errors';
import { groupNorm } from '../ops/group_norm';
import { AffineArgs, AffineParams } from './affine';
import { Kwargs, checkEpsilon, checkLayerArgs, singleShape, singleTensor } from './util';

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

/**
 * Arguments of {@link GroupNorm}: Keras 3's `GroupNormalization` arguments, camelCase (a
 * model.json's snake_case `beta_initializer` arrives as `betaInitializer`, as for tfjs built-ins).
 */
export interface GroupNormArgs extends LayerArgs, AffineArgs {
  /**
   * G, the number of groups the channels are split into: a positive integer dividing the channel
   * count, or -1 for one group per channel (instance normalization). Default 32 (Keras 3).
   */
  groups?: number;
  /** The channel axis: -1 (default, channels-last) or 1 (channels-first), any axis but 0. */
  axis?: number;
  /** ε added to the variance, default 1e-3 (Keras 3). */
  epsilon?: number;
  /** Add the learned offset β (default true). */
  center?: boolean;
  /** Multiply by the learned scale γ (default true). */
  scale?: boolean;
}

/** Arguments of {@link InstanceNorm}: those of {@link GroupNorm}, `groups` being -1. */
export type InstanceNormArgs = GroupNormArgs;

const nameCounts = new Map<string, number>();

/**
 * A default layer name for a class serialized as `Package>ClassName` (TF Addons): tfjs would derive
 * `package>_class_name_1`, which is not a valid tensor name. `addons_instance_normalization_1`
 * instead: valid, and distinct from every name tfjs derives for its own and Keras-named classes
 * (`group_normalization_1`), so two such layers never collide in one model. Undefined (tfjs's own
 * default) for other class names.
 */
function defaultName(className: string): string | undefined {
  if (!className.includes('>')) return undefined;
  const base = className
    .replace('>', '_')
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase();
  const n = (nameCounts.get(base) ?? 0) + 1;
  nameCounts.set(base, n);
  return `${base}_${n}`;
}

/** The divisors of n, for the "use one of" fix of a bad `groups`. */
function divisors(n: number): number[] {
  const out: number[] = [];
  for (let d = 1; d <= n; d++) if (n % d === 0) out.push(d);
  return out;
}

/**
 * Group Normalization (Wu & He 2018, "Group Normalization", arXiv:1803.08494) with Keras 3's
 * semantics (`keras.layers.GroupNormalization`): the C channels along `axis` are split into G
 * groups of C/G consecutive channels, and each sample is normalized per group with the mean and
 * biased variance over the group's channels and every other non-batch axis,
 *
 *   y = γ·(x − μ_{n,g})/√(σ²_{n,g} + ε) + β     (γ, β per channel)
 *
 * The statistics are per sample, so training and inference compute the same thing, there is no
 * running state, and the result does not depend on the batch: the answer to BatchNorm's
 * degradation at batch 2–4 (the paper's Figure 1). G = 1 is layer normalization over every
 * non-batch axis; G = C (`groups: -1`) is instance normalization (see {@link InstanceNorm}).
 * Any rank ≥ 2; channels-first with `axis: 1`.
 *
 * The gradient is a fused analytic backward (`ops.groupNorm`) in the centred form that keeps
 * Σ dx = 0 over each group even when |μ| ≫ σ. A mask is passed through untouched and does not enter
 * the statistics, as in Keras 3 (whose `call` takes no mask). Errors as Keras's (and PyTorch's
 * `nn.GroupNorm`): `groups` not a positive integer or -1, more groups than channels, a channel
 * count G does not divide, an undefined channel dimension, and (PyTorch) one value per group.
 *
 * Weights: `gamma`, `beta` (when scale / center), `[C]` each, Keras's names, so a converted Keras
 * model's weights load. Serialized as `GroupNormalization`, Keras 3's class name; TensorFlow
 * Addons' `Addons>GroupNormalization` loads as {@link AddonsGroupNormalization}.
 */
export class GroupNorm extends tf.layers.Layer {
  /** Serialization name: Keras 3's, which no tfjs built-in uses. */
  static className = 'GroupNormalization';
  /** The class's name in error messages (its serialization name is Keras's). */
  static publicName = 'GroupNorm';
  /**
   * The constructor arguments (and config keys) accepted, with their types: the base
   * `tf.layers.Layer` arguments and Keras 3's GroupNormalization arguments; any other name, or a
   * value of another type (`center: 'no'`, `epsilon: '1e-3'`), is an error (`checkLayerArgs`).
   * `groups` is checked first by {@link GroupNorm.checkGroups}, whose message says more (a
   * positive integer or -1, dividing the channels).
   */
  static readonly argTypes: OptionSpec = {
    ...BASE_LAYER_ARG_TYPES,
    ...optionSpec<Omit<GroupNormArgs, (typeof BASE_LAYER_ARGS)[number]>>({
      groups: 'integer',
      axis: 'integer',
      epsilon: 'number',
      center: 'boolean',
      scale: 'boolean',
      betaInitializer: KERAS_OBJECT,
      gammaInitializer: KERAS_OBJECT,
      betaRegularizer: KERAS_OBJECT,
      gammaRegularizer: KERAS_OBJECT,
      betaConstraint: KERAS_OBJECT,
      gammaConstraint: KERAS_OBJECT,
    }),
  };
  /** The names of {@link GroupNorm.argTypes}: anything else is an error. */
  static readonly acceptedArgs: readonly string[] = Object.keys(GroupNorm.argTypes);
  /** G when not given: Keras 3's 32 (TensorFlow Addons' class overrides it). */
  protected static readonly defaultGroups: number = 32;

  /** G as given: a positive integer, or -1 (one group per channel). */
  readonly groups: number;
  readonly axis: number;
  readonly epsilon: number;
  readonly center: boolean;
  readonly scale: boolean;
  private readonly affine: AffineParams;
  private gamma: tf.LayerVariable | null = null;
  private beta: tf.LayerVariable | null = null;

  constructor(args: GroupNormArgs = {}) {
    super({
      ...args,
      name: args?.name ?? defaultName(new.target.className),
    } as unknown as tf.serialization.ConfigDict);
    const owner = describeLayer(this);
    const fallback = (this.constructor as typeof GroupNorm).defaultGroups;
    // groups before the shared check: "a positive integer, or -1 …" says more than "an integer".
    const given = args != null && typeof args === 'object' ? args.groups : undefined;
    this.groups = this.checkGroups(owner, given ?? fallback);
    checkLayerArgs(this, args);
    this.supportsMasking = true;
    this.axis = args.axis ?? -1;
    if (this.axis === 0) {
      throw invalidArgument(
        owner,
        'axis',
        args.axis,
        'not to be the batch axis 0 (the statistics are per sample)',
        'Use -1 for channels-last or 1 for channels-first; to normalize over the batch, use batchNorm.',
      );
    }
    this.epsilon = checkEpsilon(owner, args.epsilon, 1e-3);
    this.center = args.center ?? true;
    this.scale = args.scale ?? true;
    this.affine = new AffineParams(owner, args);
  }

  /** Keras 3's constructor check: a positive integer, or -1 for instance normalization. */
  protected checkGroups(owner: string, groups: unknown): number {
    if (typeof groups !== 'number' || !Number.isInteger(groups) || (groups <= 0 && groups !== -1)) {
      throw invalidArgument(
        owner,
        'groups',
        groups,
        'to be a positive integer, or -1 for instance normalization (one group per channel)',
        'It must divide the number of channels, e.g. 32 groups of 2 channels for 64 channels.',
      );
    }
    return groups;
  }

  /** The channel axis, non-negative for an input of rank `rank`. */
  private channelAxis(rank: number): number {
    return this.axis < 0 ? this.axis + rank : this.axis;
  }

  /** G for `channels` channels (-1 resolved to one group per channel). */
  protected groupsFor(channels: number): number {
    return this.groups === -1 ? channels : this.groups;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const owner = describeLayer(this);
    const shape = singleShape(inputShape, owner);
    const rank = shape.length;
    const shown = JSON.stringify(shape);
    if (rank < 2) {
      throw invalidArgument(
        owner,
        'input rank',
        rank,
        'to be at least 2 ([batch, …, channels])',
        `Received input shape ${shown}.`,
      );
    }
    const axis = this.channelAxis(rank);
    if (axis <= 0 || axis >= rank) {
      throw invalidArgument(
        owner,
        'axis',
        this.axis,
        `in [${1 - rank}, ${rank}) and not the batch axis, for an input of rank ${rank} (shape ${shown})`,
        'Use -1 for channels-last or 1 for channels-first.',
      );
    }
    const dim = shape[axis];
    if (dim == null) {
      throw invalidArgument(
        owner,
        `input shape[${axis}] (the channel dimension of axis ${this.axis})`,
        dim,
        'to be defined',
        `Received input shape ${shown}; give the input layer a fixed channel count.`,
      );
    }
    const groups = this.groupsFor(dim);
    if (groups > dim) {
      throw invalidArgument(
        owner,
        'groups',
        this.groups,
        `to be at most the number of channels (${dim}, input shape ${shown})`,
        `Use a divisor of ${dim}: ${divisors(dim).join(', ')}.`,
      );
    }
    if (dim % groups !== 0) {
      throw invalidArgument(
        owner,
        'groups',
        this.groups,
        `to divide the number of channels (${dim}, input shape ${shown}) evenly`,
        `Use a divisor of ${dim}: ${divisors(dim).join(', ')}.`,
      );
    }
    this.checkValuesPerGroup(shape, axis, groups);
    this.inputSpec = [new tf.InputSpec({ ndim: rank, axes: { [axis]: dim } })];
    if (this.scale) this.gamma = this.addWeight('gamma', [dim], ...this.affine.weight('gamma'));
    if (this.center) this.beta = this.addWeight('beta', [dim], ...this.affine.weight('beta'));
    this.built = true;
  }

  /**
   * PyTorch's "Expected more than 1 value per group": with one value per sample and group, x̂ = 0
   * and the output is β whatever the input (the gradient to x is 0). Checked when the non-batch
   * sizes are known (at build, else at call; shapes only, no tensor read).
   */
  private checkValuesPerGroup(shape: tf.Shape, axis: number, groups: number): void {
    const sizes = shape.slice(1).map((d, i) => (i + 1 === axis ? d! / groups : d));
    if (sizes.some((d) => d == null)) return;
    if ((sizes as number[]).reduce((a, b) => a * b, 1) !== 1) return;
    throw invalidArgument(
      describeLayer(this),
      'values per group',
      1,
      `to be more than 1 (input shape ${JSON.stringify(shape)} with ${groups} group(s) of ` +
        `${shape[axis]! / groups} channel(s) gives each sample one value per group, so the ` +
        'output would be β whatever the input)',
      'Use fewer groups, or normalize an input with spatial or time axes.',
    );
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    void kwargs;
    const x = singleTensor(inputs, describeLayer(this));
    const axis = this.channelAxis(x.rank);
    const groups = this.groupsFor(x.shape[axis]);
    this.checkValuesPerGroup(x.shape, axis, groups);
    return tf.tidy(() =>
      groupNorm(
        x,
        this.gamma?.read() ?? null,
        this.beta?.read() ?? null,
        axis,
        groups,
        this.epsilon,
      ),
    );
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    const config: tf.serialization.ConfigDict = {
      groups: this.groups,
      axis: this.axis,
      epsilon: this.epsilon,
      center: this.center,
      scale: this.scale,
      ...this.affine.initializerConfig(),
      ...this.affine.penaltyConfig(),
    };
    return { ...super.getConfig(), ...config };
  }
}

/**
 * {@link GroupNorm} under TensorFlow Addons' serialization name `Addons>GroupNormalization`
 * (tensorflow_addons/layers/normalizations.py), so a model saved with `tfa.layers.GroupNormalization`
 * and converted by tensorflowjs_converter loads. Same config keys and weights; the one difference
 * is Addons' default `groups: 2` (every saved config states its groups, so it only matters when
 * constructing this class by hand). Use {@link GroupNorm} for new models.
 */
export class AddonsGroupNormalization extends GroupNorm {
  /** Serialization name: TensorFlow Addons' registered name. */
  static override className = 'Addons>GroupNormalization';
  static override publicName = 'AddonsGroupNormalization';
  protected static override readonly defaultGroups: number = 2;
}

/**
 * Instance Normalization (Ulyanov, Vedaldi & Lempitsky 2016, "Instance Normalization: The Missing
 * Ingredient for Fast Stylization", arXiv:1607.08022, Eq. 2): each sample's channels normalized
 * separately over the spatial (or time) axes,
 *
 *   y = γ·(x − μ_{n,c})/√(σ²_{n,c} + ε) + β,
 *
 * i.e. {@link GroupNorm} with one group per channel (`groups: -1`), with every other argument and
 * behaviour of GroupNorm (Keras 3 writes instance norm as `GroupNormalization(groups=-1)`).
 *
 * Keras 3 has no InstanceNormalization class; the name every saved Keras model with one uses is
 * TensorFlow Addons' `Addons>InstanceNormalization`, which is this class's serialization name, so
 * those models load after tensorflowjs_converter and this layer's models load in TensorFlow with
 * Addons. Addons writes `groups` = C into the config after build (and ignores it when loading), so
 * `groups` is accepted as -1 or, checked at build, the channel count; anything else is an error.
 */
export class InstanceNorm extends GroupNorm {
  /** Serialization name: TensorFlow Addons' (Keras 3 has no instance norm class). */
  static override className = 'Addons>InstanceNormalization';
  static override publicName = 'InstanceNorm';
  protected static override readonly defaultGroups: number = -1;

  protected override groupsFor(channels: number): number {
    if (this.groups !== -1 && this.groups !== channels) {
      throw invalidArgument(
        describeLayer(this),
        'groups',
        this.groups,
        `to be -1 or the number of channels (${channels}): instance norm has one group per channel`,
        'Leave groups out, or use groupNorm for fewer groups.',
      );
    }
    return channels;
  }
}
