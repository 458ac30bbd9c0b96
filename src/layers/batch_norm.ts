import * as tf from '@tensorflow/tfjs';
import { BASE_LAYER_ARGS, describeLayer, invalidArgument, optionKeys } from '../errors';
import {
  batchMoments,
  besselFactor,
  normalizeInference,
  normalizeTraining,
  reductionAxes,
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
   * cumulative average of every batch statistic seen so far (PyTorch's `momentum=None`).
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
 *   non-trainable weight `num_batches_tracked`, so it survives save/load.
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
    const shape = singleShape(inputShape);
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
    const x = singleTensor(inputs);
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
    const axes = reductionAxes(x.rank, axis);
    const m = axes.reduce((n, a) => n * x.shape[a], 1);
    if (this.varianceCorrection === 'unbiased' && m < 2) {
      throw invalidArgument(
        this.describe(),
        'elements per channel m (batch × spatial size)',
        m,
        "to be at least 2 under varianceCorrection 'unbiased' (m/(m−1) is undefined for m = 1)",
        `Train with batches of 2 or more, or use varianceCorrection 'biased'. Input shape ${JSON.stringify(x.shape)}.`,
      );
    }
    return tf.tidy(() => {
      const moments = batchMoments(x, axes);
      const y = normalizeTraining(
        x,
        moments,
        this.gamma?.read() ?? null,
        this.beta?.read() ?? null,
        this.epsilon,
        axis,
      );
      const channels = [x.shape[axis]];
      let variance = tf.reshape(moments.variance, channels);
      if (this.varianceCorrection === 'unbiased') variance = tf.mul(variance, besselFactor(m));
      this.updateMovingStatistics(tf.reshape(moments.mean, channels), variance);
      return y;
    });
  }

  /**
   * moving ← moving − (moving − value)·d, with d = 1 − momentum (the built-in's formula), or
   * d = 1/n for the n-th batch in cumulative mode, which makes moving the mean of all n values.
   */
  private updateMovingStatistics(mean: tf.Tensor, variance: tf.Tensor): void {
    tf.tidy(() => {
      let decay: tf.Tensor | number;
      if (this.numBatchesTracked) {
        const n = tf.add(this.numBatchesTracked.read(), 1);
        this.numBatchesTracked.write(n);
        decay = tf.reciprocal(n);
      } else {
        decay = 1 - (this.momentum as number);
      }
      for (const [variable, value] of [
        [this.movingMean, mean],
        [this.movingVariance, variance],
      ] as const) {
        const old = variable.read();
        variable.write(tf.sub(old, tf.mul(tf.sub(old, value), decay)));
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
