import * as tf from '@tensorflow/tfjs';
import { BASE_LAYER_ARGS, describeLayer, invalidArgument, optionKeys } from '../errors';
import {
  BatchMoments,
  batchMoments,
  countUsableBatch,
  guardedMovingAverage,
  maskedBatchMoments,
  maskWeights,
  normalizeInference,
  normalizeTraining,
  reductionAxes,
  unbiasedVariance,
  usableChannels,
  VarianceCorrection,
} from '../ops/batch_norm';
import {
  Constraint,
  Initializer,
  Regularizer,
  getConstraint,
  getInitializer,
  getRegularizer,
  serializeKerasObject,
} from './keras_objects';
import { Kwargs, checkLayerArgs, singleShape, singleTensor } from './util';

type BuiltinBatchNormArgs = NonNullable<Parameters<typeof tf.layers.batchNormalization>[0]>;

/** Arguments of {@link BatchNorm}: every argument of `tf.layers.batchNormalization`, plus two. */
export interface BatchNormArgs extends Omit<BuiltinBatchNormArgs, 'momentum'> {
  /**
   * Weight of the old value in the running averages, `moving ← momentum·moving + (1−momentum)·batch`
   * (the Keras convention; PyTorch's momentum is 1 − this). Default 0.99. `null` means an exact
   * cumulative average of every batch statistic seen so far (PyTorch's `momentum=None`). Its count
   * `num_batches_tracked` is one scalar, as in PyTorch: a batch is counted when at least one
   * channel was updated, so a skipped batch (m = 1, fully masked, non-finite everywhere) is not
   * counted; a channel skipped alone then treats its running value as that batch's value.
   */
  momentum?: number | null;
  /**
   * Variance fed to `moving_variance`: `'unbiased'` (default) uses m/(m−1)·σ²_B, the population
   * estimate of Ioffe & Szegedy (2015, Alg. 2) and PyTorch's `running_var`; `'biased'` uses σ²_B,
   * as `tf.layers.batchNormalization` does. m = elements reduced per channel.
   */
  varianceCorrection?: VarianceCorrection;
}

const VARIANCE_CORRECTIONS: readonly VarianceCorrection[] = ['unbiased', 'biased'];

/**
 * Batch normalization (Ioffe & Szegedy 2015, arXiv:1502.03167) with explicit running-variance
 * semantics.
 *
 * Training: `y = γ·(x−μ_B)/√(σ²_B+ε) + β` with the batch's per-channel mean μ_B and biased variance
 * σ²_B (two-pass moments), differentiated by a fused analytic backward; the running statistics are
 * then updated with μ_B and, under `'unbiased'`, m/(m−1)·σ²_B.
 * - With a mask (`[batch, time]` for a `[batch, time, channels]` input, after `tf.layers.masking`
 *   or an embedding with `maskZero`), μ_B, σ²_B and m count the unmasked positions only, as in
 *   Keras 3; every position is still normalized with those statistics.
 * - A batch of one (m = 1: x̂ = 0, the output is β, as the built-in's) leaves the running statistics
 *   unchanged under `'unbiased'` (m/(m−1) is undefined), with a one-time `console.warn`; under
 *   `'biased'` it updates them with σ²_B = 0, as the built-in does. Under a mask the same rule
 *   holds per channel for fewer than 2 (or, `'biased'`, 0) unmasked elements, silently: the count
 *   lives on the device and is never read back.
 * - A channel whose μ_B or fed variance is NaN or ±Infinity keeps its running statistics, so a
 *   poisoned batch cannot poison the model (pair with `clipOptimizer(opt, {nonFinite: 'skip'})`,
 *   which skips the weight update of the same step).
 * Inference: the same transform with `moving_mean` and `moving_variance`.
 *
 * Differences from `tf.layers.batchNormalization` (tfjs 4.22), each tested:
 * - the running variance is unbiased by default (the built-in's is biased: x = [1, 2, 3, 4] with
 *   momentum 0 gives 5/3 here, 1.25 there);
 * - channels-first (`axis: 1` on rank 3–5) is normalized along the right axis (tfjs#1106: the
 *   built-in applies the statistics along the last axis);
 * - `trainable = false` means inference mode, as in Keras ≥ 2.1.3: moving statistics are used and
 *   never updated (the built-in keeps normalizing with batch statistics and updating them);
 * - `momentum: null` gives an exact cumulative average; the batch count is then a fifth,
 *   non-trainable weight `num_batches_tracked`, so it survives save/load;
 * - a mask is honoured in the batch statistics (the built-in ignores it and learns the padding);
 * - non-finite batch statistics never reach the running statistics (the built-in's become NaN).
 *
 * Weights are `[gamma, beta, moving_mean, moving_variance]` (gamma/beta only when scale/center), as
 * the built-in's, so `setWeights(builtin.getWeights())` works both ways.
 */
export class BatchNorm extends tf.layers.Layer {
  /** Serialization name: distinct from the built-in's 'BatchNormalization', which it must not replace. */
  static className = 'DropnormBatchNorm';
  /**
   * The constructor arguments (and config keys) BatchNorm accepts: the base `tf.layers.Layer`
   * arguments and the ones below; anything else is an error. Add a new argument here.
   */
  static readonly acceptedArgs: readonly string[] = [
    ...BASE_LAYER_ARGS,
    ...optionKeys<Omit<BatchNormArgs, (typeof BASE_LAYER_ARGS)[number]>>({
      axis: true,
      momentum: true,
      epsilon: true,
      center: true,
      scale: true,
      betaInitializer: true,
      gammaInitializer: true,
      movingMeanInitializer: true,
      movingVarianceInitializer: true,
      betaConstraint: true,
      gammaConstraint: true,
      betaRegularizer: true,
      gammaRegularizer: true,
      varianceCorrection: true,
    }),
  ];

  readonly axis: number;
  readonly momentum: number | null;
  readonly epsilon: number;
  readonly center: boolean;
  readonly scale: boolean;
  readonly varianceCorrection: VarianceCorrection;
  private readonly betaInitializer: Initializer;
  private readonly gammaInitializer: Initializer;
  private readonly movingMeanInitializer: Initializer;
  private readonly movingVarianceInitializer: Initializer;
  private readonly betaRegularizer: Regularizer | null;
  private readonly gammaRegularizer: Regularizer | null;
  private readonly betaConstraint: Constraint | null;
  private readonly gammaConstraint: Constraint | null;

  private gamma: tf.LayerVariable | null = null;
  private beta: tf.LayerVariable | null = null;
  private movingMean!: tf.LayerVariable;
  private movingVariance!: tf.LayerVariable;
  private numBatchesTracked: tf.LayerVariable | null = null;
  private warnedSkippedBatch = false;

  constructor(args: BatchNormArgs = {}) {
    super(args as tf.serialization.ConfigDict);
    checkLayerArgs(this, args);
    this.supportsMasking = true;
    const owner = this.describe();
    this.axis = args.axis ?? -1;
    if (!Number.isInteger(this.axis)) {
      throw invalidArgument(owner, 'axis', args.axis, 'to be an integer');
    }
    this.momentum = args.momentum === undefined ? 0.99 : args.momentum;
    if (this.momentum !== null && !(this.momentum >= 0 && this.momentum < 1)) {
      throw invalidArgument(
        owner,
        'momentum',
        args.momentum,
        'in [0, 1) or null',
        'Use e.g. 0.99 for an exponential moving average, or null for a cumulative average.',
      );
    }
    this.epsilon = args.epsilon ?? 1e-3;
    if (!(this.epsilon > 0) || !Number.isFinite(this.epsilon)) {
      throw invalidArgument(
        owner,
        'epsilon',
        args.epsilon,
        'to be a finite number > 0',
        'It keeps 1/√(σ²+ε) finite; 1e-3 is the default.',
      );
    }
    this.varianceCorrection = args.varianceCorrection ?? 'unbiased';
    if (!VARIANCE_CORRECTIONS.includes(this.varianceCorrection)) {
      throw invalidArgument(
        owner,
        'varianceCorrection',
        args.varianceCorrection,
        "to be 'unbiased' or 'biased'",
      );
    }
    this.center = args.center ?? true;
    this.scale = args.scale ?? true;
    this.betaInitializer = getInitializer(args.betaInitializer, 'zeros');
    this.gammaInitializer = getInitializer(args.gammaInitializer, 'ones');
    this.movingMeanInitializer = getInitializer(args.movingMeanInitializer, 'zeros');
    this.movingVarianceInitializer = getInitializer(args.movingVarianceInitializer, 'ones');
    this.betaRegularizer = getRegularizer(args.betaRegularizer);
    this.gammaRegularizer = getRegularizer(args.gammaRegularizer);
    this.betaConstraint = getConstraint(args.betaConstraint);
    this.gammaConstraint = getConstraint(args.gammaConstraint);
  }

  private describe(): string {
    return describeLayer(this);
  }

  /** The channel axis, made non-negative for an input of rank `rank`. */
  private channelAxis(rank: number): number {
    return this.axis < 0 ? this.axis + rank : this.axis;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = singleShape(inputShape, this.describe());
    const rank = shape.length;
    if (rank < 2) {
      throw invalidArgument(
        this.describe(),
        'input rank',
        rank,
        'to be at least 2 ([batch, …, channels])',
        `Received input shape ${JSON.stringify(shape)}.`,
      );
    }
    const axis = this.channelAxis(rank);
    if (axis < 0 || axis >= rank) {
      throw invalidArgument(
        this.describe(),
        'axis',
        this.axis,
        `in [${-rank}, ${rank}) for an input of rank ${rank} (shape ${JSON.stringify(shape)})`,
        'Use -1 for channels-last or 1 for channels-first.',
      );
    }
    const dim = shape[axis];
    if (dim == null) {
      throw invalidArgument(
        this.describe(),
        `input shape[${axis}] (the channel dimension of axis ${this.axis})`,
        dim,
        'to be defined',
        `Received input shape ${JSON.stringify(shape)}; give the input layer a fixed channel count.`,
      );
    }
    this.inputSpec = [new tf.InputSpec({ ndim: rank, axes: { [axis]: dim } })];
    const params = [dim];
    if (this.scale) {
      this.gamma = this.addWeight(
        'gamma',
        params,
        'float32',
        this.gammaInitializer,
        this.gammaRegularizer ?? undefined,
        true,
        this.gammaConstraint ?? undefined,
      );
    }
    if (this.center) {
      this.beta = this.addWeight(
        'beta',
        params,
        'float32',
        this.betaInitializer,
        this.betaRegularizer ?? undefined,
        true,
        this.betaConstraint ?? undefined,
      );
    }
    this.movingMean = this.addWeight(
      'moving_mean',
      params,
      'float32',
      this.movingMeanInitializer,
      undefined,
      false,
    );
    this.movingVariance = this.addWeight(
      'moving_variance',
      params,
      'float32',
      this.movingVarianceInitializer,
      undefined,
      false,
    );
    if (this.momentum === null) {
      this.numBatchesTracked = this.addWeight(
        'num_batches_tracked',
        [],
        'float32',
        tf.initializers.zeros(),
        undefined,
        false,
      );
    }
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    const x = singleTensor(inputs, this.describe());
    const axis = this.channelAxis(x.rank);
    // A frozen BN runs in inference mode, as in Keras: fine-tuning must not move its statistics.
    const training = kwargs['training'] === true && this.trainable;
    if (!training) {
      return tf.tidy(() =>
        normalizeInference(
          x,
          this.movingMean.read(),
          this.movingVariance.read(),
          this.gamma?.read() ?? null,
          this.beta?.read() ?? null,
          this.epsilon,
          axis,
        ),
      );
    }
    const mask = this.trainingMask(x, kwargs['mask'], axis);
    const axes = reductionAxes(x.rank, axis);
    return tf.tidy(() => {
      const moments = mask
        ? maskedBatchMoments(x, maskWeights(mask, axis), axes)
        : batchMoments(x, axes);
      const y = normalizeTraining(
        x,
        moments,
        this.gamma?.read() ?? null,
        this.beta?.read() ?? null,
        this.epsilon,
        axis,
      );
      const minCount = this.varianceCorrection === 'unbiased' ? 2 : 1;
      if (typeof moments.count === 'number' && moments.count < minCount) {
        // m is static here, so the skip costs nothing; under a mask it is decided on the device.
        this.warnSkippedBatch(x.shape, moments.count);
      } else {
        this.updateMovingStatistics(moments, x.shape[axis], minCount);
      }
      return y;
    });
  }

  /**
   * The mask tf.layers passes after `tf.layers.masking` or an embedding with `maskZero`, checked
   * against the input: one entry per position, i.e. the input's shape without the channel axis.
   */
  private trainingMask(x: tf.Tensor, mask: unknown, axis: number): tf.Tensor | null {
    const m = Array.isArray(mask) ? mask[0] : mask;
    if (m == null) return null;
    const expected = x.shape.filter((_, i) => i !== axis);
    const shape = (m as tf.Tensor).shape;
    if (shape.length !== expected.length || shape.some((d, i) => d !== expected[i])) {
      throw invalidArgument(
        this.describe(),
        'mask shape',
        shape,
        `to be the input shape without the channel axis ${this.axis}, ${JSON.stringify(expected)}`,
        `Received input shape ${JSON.stringify(x.shape)}. A mask marks positions (e.g. timesteps), ` +
          'never channels: put BatchNorm where the mask is [batch, time] and the input ' +
          '[batch, time, channels], or remove the masking layer.',
      );
    }
    return m as tf.Tensor;
  }

  /** Says once per layer why a batch with m < 2 leaves the running statistics alone. */
  private warnSkippedBatch(shape: number[], m: number): void {
    if (this.warnedSkippedBatch || this.varianceCorrection !== 'unbiased') return;
    this.warnedSkippedBatch = true;
    console.warn(
      `${this.describe()}: a training batch has m = ${m} element(s) per channel ` +
        `(input shape ${JSON.stringify(shape)}); under varianceCorrection 'unbiased' the ` +
        'factor m/(m−1) is undefined for m < 2, so moving_mean and moving_variance are left ' +
        'unchanged for such batches (the output is β, as with tf.layers.batchNormalization). ' +
        'model.fit makes such a batch when samples % batchSize == 1. This warning is shown ' +
        "once per layer; use varianceCorrection 'biased' to update with σ²_B = 0 instead.",
    );
  }

  /**
   * moving ← moving − (moving − value)·d, with d = 1 − momentum (the built-in's formula), or
   * d = 1/n for the n-th batch in cumulative mode, which makes moving the mean of all n values.
   * Per channel, a non-finite μ_B or fed variance, or fewer than `minCount` unmasked elements,
   * leaves that channel as it was (selected on the device, never read back).
   */
  private updateMovingStatistics(moments: BatchMoments, channels: number, minCount: number): void {
    tf.tidy(() => {
      const mean = tf.reshape(moments.mean, [channels]);
      let variance = tf.reshape(moments.variance, [channels]);
      const count =
        typeof moments.count === 'number' ? moments.count : tf.reshape(moments.count, [1]);
      if (this.varianceCorrection === 'unbiased') variance = unbiasedVariance(variance, count);
      const usable = usableChannels(mean, variance, count, minCount);
      let decay: tf.Tensor | number;
      if (this.numBatchesTracked) {
        const n = countUsableBatch(this.numBatchesTracked.read(), usable);
        this.numBatchesTracked.write(n);
        // n = 0 only when no channel is usable, and then no channel reads the decay.
        decay = tf.reciprocal(tf.maximum(n, 1));
      } else {
        decay = 1 - (this.momentum as number);
      }
      for (const [variable, value] of [
        [this.movingMean, mean],
        [this.movingVariance, variance],
      ] as const) {
        variable.write(guardedMovingAverage(variable.read(), value, decay, usable));
      }
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    const config: tf.serialization.ConfigDict = {
      axis: this.axis,
      momentum: this.momentum,
      epsilon: this.epsilon,
      center: this.center,
      scale: this.scale,
      varianceCorrection: this.varianceCorrection,
      betaInitializer: serializeKerasObject(this.betaInitializer),
      gammaInitializer: serializeKerasObject(this.gammaInitializer),
      movingMeanInitializer: serializeKerasObject(this.movingMeanInitializer),
      movingVarianceInitializer: serializeKerasObject(this.movingVarianceInitializer),
      betaRegularizer: serializeKerasObject(this.betaRegularizer),
      gammaRegularizer: serializeKerasObject(this.gammaRegularizer),
      betaConstraint: serializeKerasObject(this.betaConstraint),
      gammaConstraint: serializeKerasObject(this.gammaConstraint),
    };
    return { ...super.getConfig(), ...config };
  }
}
