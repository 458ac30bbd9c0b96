import * as tf from '@tensorflow/tfjs';
import {
  BASE_LAYER_ARGS,
  BASE_LAYER_ARG_TYPES,
  KERAS_OBJECT,
  OptionSpec,
  checkOptionKeys,
  describeLayer,
  invalidArgument,
  optionSpec,
} from '../errors';
import {
  BatchMoments,
  batchMoments,
  channelShape,
  countUsableBatch,
  guardedMovingAverage,
  maskedBatchMoments,
  maskWeights,
  normalizeInference,
  normalizeTraining,
  poolVirtualBatchStatistics,
  reductionAxes,
  RenormClipping,
  RenormLimits,
  renormLimits,
  RenormRamp,
  unbiasedVariance,
  usableChannels,
  VarianceCorrection,
  oneBlockPerVirtualBatch,
  virtualBatches,
} from '../ops/batch_norm';
import { AffineParams } from './affine';
import { Initializer, getInitializer, serializeKerasObject } from './keras_objects';
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
  /**
   * Batch Renormalization (Ioffe 2017, arXiv:1702.03275): in training, normalize with the batch
   * moments corrected towards moving estimates, y = γ·(x̂·r + d) + β with r = σ_B/σ and
   * d = (μ_B − μ)/σ clipped by `renormClipping` and held constant in the gradient. μ and σ² are the
   * moving statistics (the paper's Algorithm 1), or, with `renormMomentum`, two extra weights of
   * their own. Inference is unchanged (plain BN with `moving_mean`, `moving_variance`).
   * Default false.
   */
  renorm?: boolean;
  /**
   * Limits of the renorm correction, `{rmax, rmin, dmax}` as tf.keras 2's `renorm_clipping`: r is
   * clipped to [rmin, rmax], d to [−dmax, dmax]; a missing rmax or dmax is no limit, a missing rmin
   * is 1/rmax (the paper's [1/r_max, r_max]). Only with `renorm: true`.
   */
  renormClipping?: RenormClipping;
  /**
   * Give r and d reference statistics of their own, as tf.keras 2 does: two extra weights
   * `renorm_mean` and `renorm_variance`, updated like the moving statistics but with this momentum
   * (tf.keras 2's `renorm_momentum`, 0.99 there by default), so that how fast the reference
   * follows the batches is set apart from `momentum`, which then only shapes the inference
   * statistics. Absent or null (default): r and d use `moving_mean` and `moving_variance`. Only
   * with `renorm: true`.
   */
  renormMomentum?: number | null;
  /**
   * Ramp the clipping from plain BN (r_max = 1, d_max = 0) to `renormClipping` over training steps,
   * as in the paper's Section 4 (see {@link RenormRamp}). The step count is a weight
   * `renorm_steps`, saved with the model. Needs `renorm: true` and finite `rmax` and `dmax`.
   */
  renormRamp?: RenormRamp;
  /**
   * Ghost BatchNorm (Hoffer et al. 2017, arXiv:1705.08741; tf.keras 2's `virtual_batch_size`): in
   * training, split the batch into virtual batches of this many consecutive samples, each normalized
   * with its own moments; a batch that does not divide evenly normalizes the remainder as one more
   * virtual batch. The running statistics are updated once per step (see
   * {@link poolVirtualBatchStatistics}). An integer ≥ 2, or null (default: the whole batch).
   */
  virtualBatchSize?: number | null;
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
 * Batch Renormalization (`renorm: true`, Ioffe 2017, arXiv:1702.03275, Algorithm 1): training
 * computes `y = γ·(x̂·r + d) + β` with x̂ = (x−μ_B)/σ_B, σ_B = √(σ²_B+ε) (biased, as in the paper),
 * r = clip(σ_B/σ, rmin, rmax) and d = clip((μ_B−μ)/σ, −dmax, dmax) held constant in the gradient,
 * where μ and σ² are the moving statistics before the step (the paper's single set of moving
 * averages), or, with `renormMomentum`, the weights `renorm_mean` and `renorm_variance`, updated
 * after the step exactly like the moving statistics (same `varianceCorrection`, same guards) but
 * with that momentum (tf.keras 2's separate renorm statistics). The moving statistics, and so
 * inference, are those of plain BN.
 * `renormRamp` relaxes the limits from plain BN (rmax = 1, dmax = 0) over training steps.
 *
 * Ghost BatchNorm (`virtualBatchSize: V`, Hoffer et al. 2017): training normalizes each run of V
 * consecutive samples with its own moments (a remainder is one more, smaller, virtual batch; with
 * renorm, each gets its own r and d); the running statistics are updated once per step with the
 * mean of the virtual batches' means and of their fed variances, each weighted by its element
 * count (see `ops.poolVirtualBatchStatistics`); a virtual batch of one element per channel is left
 * out under `'unbiased'`, as a batch of one is.
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
 * the built-in's, so `setWeights(builtin.getWeights())` works both ways. Extra state follows, in
 * this order: `num_batches_tracked` (momentum null), `renorm_mean` and `renorm_variance` (renormMomentum),
 * `renorm_steps` (renormRamp).
 */
export class BatchNorm extends tf.layers.Layer {
  /** Serialization name: distinct from the built-in's 'BatchNormalization', which it must not replace. */
  static className = 'DropnormBatchNorm';
  /**
   * The constructor arguments (and config keys) BatchNorm accepts, with their types: the base
   * `tf.layers.Layer` arguments and the ones below; any other name, or a value of another type
   * (`momentum: '0.9'`, `center: 'no'`), is an error. Add a new argument here.
   */
  static readonly argTypes: OptionSpec = {
    ...BASE_LAYER_ARG_TYPES,
    ...optionSpec<Omit<BatchNormArgs, (typeof BASE_LAYER_ARGS)[number]>>({
      axis: 'number',
      momentum: 'number|null',
      epsilon: 'number',
      center: 'boolean',
      scale: 'boolean',
      betaInitializer: KERAS_OBJECT,
      gammaInitializer: KERAS_OBJECT,
      movingMeanInitializer: KERAS_OBJECT,
      movingVarianceInitializer: KERAS_OBJECT,
      betaConstraint: KERAS_OBJECT,
      gammaConstraint: KERAS_OBJECT,
      betaRegularizer: KERAS_OBJECT,
      gammaRegularizer: KERAS_OBJECT,
      varianceCorrection: 'string',
      renorm: 'boolean',
      renormClipping: 'object|null',
      renormMomentum: 'number|null',
      renormRamp: 'object|null',
      virtualBatchSize: 'number|null',
    }),
  };
  /** The names of {@link BatchNorm.argTypes}: anything else is an error. */
  static readonly acceptedArgs: readonly string[] = Object.keys(BatchNorm.argTypes);

  readonly axis: number;
  readonly momentum: number | null;
  readonly epsilon: number;
  readonly center: boolean;
  readonly scale: boolean;
  readonly varianceCorrection: VarianceCorrection;
  /** Batch Renormalization on (see the class doc). */
  readonly renorm: boolean;
  /** The renorm clipping as given (empty: unclipped). */
  readonly renormClipping: Readonly<RenormClipping>;
  /** Momentum of the separate renorm statistics, or null: r and d use the moving statistics. */
  readonly renormMomentum: number | null;
  /** The clipping ramp, or null for fixed limits. */
  readonly renormRamp: Readonly<RenormRamp> | null;
  /** Ghost BatchNorm's virtual batch size, or null (the whole batch). */
  readonly virtualBatchSize: number | null;
  private readonly affine: AffineParams;
  private readonly movingMeanInitializer: Initializer;
  private readonly movingVarianceInitializer: Initializer;

  private gamma: tf.LayerVariable | null = null;
  private beta: tf.LayerVariable | null = null;
  private movingMean!: tf.LayerVariable;
  private movingVariance!: tf.LayerVariable;
  private numBatchesTracked: tf.LayerVariable | null = null;
  private renormMean: tf.LayerVariable | null = null;
  private renormVariance: tf.LayerVariable | null = null;
  private renormSteps: tf.LayerVariable | null = null;
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
    const renorm = checkRenormArgs(owner, args);
    this.renorm = renorm.renorm;
    this.renormClipping = renorm.clipping;
    this.renormMomentum = renorm.momentum;
    this.renormRamp = renorm.ramp;
    this.virtualBatchSize = args.virtualBatchSize ?? null;
    if (
      this.virtualBatchSize !== null &&
      !(Number.isInteger(this.virtualBatchSize) && this.virtualBatchSize >= 2)
    ) {
      throw invalidArgument(
        owner,
        'virtualBatchSize',
        args.virtualBatchSize,
        'to be an integer ≥ 2, or null',
        'It is the number of samples normalized together (a virtual batch of 1 would output β); ' +
          'use null to normalize the whole batch.',
      );
    }
    this.center = args.center ?? true;
    this.scale = args.scale ?? true;
    const where = (argument: string) => ({ owner, argument });
    this.affine = new AffineParams(owner, args);
    this.movingMeanInitializer = getInitializer(
      args.movingMeanInitializer,
      'zeros',
      where('movingMeanInitializer'),
    );
    this.movingVarianceInitializer = getInitializer(
      args.movingVarianceInitializer,
      'ones',
      where('movingVarianceInitializer'),
    );
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
    if (this.virtualBatchSize !== null && axis === 0) {
      throw invalidArgument(
        this.describe(),
        'axis',
        this.axis,
        `not to be the batch axis 0 with virtualBatchSize ${this.virtualBatchSize}`,
        'Ghost BatchNorm splits the batch axis into virtual batches; use -1 (channels-last) or 1 (channels-first).',
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
    if (this.scale) this.gamma = this.addWeight('gamma', params, ...this.affine.weight('gamma'));
    if (this.center) this.beta = this.addWeight('beta', params, ...this.affine.weight('beta'));
    // The statistics and counters: non-trainable float32 state, written in training steps.
    const state = (name: string, shape: number[], init: Initializer) =>
      this.addWeight(name, shape, 'float32', init, undefined, false);
    this.movingMean = state('moving_mean', params, this.movingMeanInitializer);
    this.movingVariance = state('moving_variance', params, this.movingVarianceInitializer);
    if (this.momentum === null) {
      this.numBatchesTracked = state('num_batches_tracked', [], tf.initializers.zeros());
    }
    if (this.renorm && this.renormMomentum !== null) {
      // Initialized like the moving statistics (as Keras 3's renorm_mean / renorm_stddev).
      this.renormMean = state('renorm_mean', params, this.movingMeanInitializer);
      this.renormVariance = state('renorm_variance', params, this.movingVarianceInitializer);
    }
    if (this.renorm && this.renormRamp) {
      this.renormSteps = state('renorm_steps', [], tf.initializers.zeros());
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
    return tf.tidy(() => {
      const limits = this.renorm ? this.stepLimits() : null;
      const weights = mask ? maskWeights(mask, axis) : null;
      const blocks =
        this.virtualBatchSize === null ? [] : virtualBatches(x.shape[0], this.virtualBatchSize);
      const minCount = this.varianceCorrection === 'unbiased' ? 2 : 1;
      let y: tf.Tensor;
      if (blocks.length <= 1 && (blocks[0]?.groups ?? 1) === 1) {
        // The whole batch is one (virtual) batch: plain BatchNorm.
        const { y: out, moments } = this.normalizeBlock(x, weights, axis, 1, limits);
        y = out;
        if (typeof moments.count === 'number' && moments.count < minCount) {
          // m is static here, so the skip costs nothing; under a mask it is decided on the device.
          this.warnSkippedBatch(x.shape, moments.count);
        } else {
          const channels = x.shape[axis];
          const mean = tf.reshape(moments.mean, [channels]);
          let variance = tf.reshape(moments.variance, [channels]);
          const count =
            typeof moments.count === 'number' ? moments.count : tf.reshape(moments.count, [1]);
          if (this.varianceCorrection === 'unbiased') variance = unbiasedVariance(variance, count);
          this.updateStatistics(mean, variance, count, minCount);
        }
      } else {
        y = this.ghostStep(x, weights, axis, blocks, limits, minCount);
      }
      if (this.renormSteps) this.renormSteps.write(tf.add(this.renormSteps.read(), 1));
      return y;
    });
  }

  /**
   * The limits of r and d at this training step: fixed, or ramped from the step counter on the
   * device (see {@link RenormRamp}).
   */
  private stepLimits(): RenormLimits {
    return renormLimits(this.renormClipping, this.renormRamp, this.renormSteps?.read() ?? null);
  }

  /**
   * The renorm clipping in force at the next training step, as numbers. Null without renorm.
   * With a `renormRamp` this reads the step counter back from the device synchronously
   * (`dataSync`), which stalls webgl and webgpu until their queue drains: for logging and tests,
   * never in a training loop; on GPU backends prefer {@link BatchNorm.currentRenormClippingAsync}.
   * Without a ramp the limits are numbers and nothing is read.
   */
  currentRenormClipping(): { rmax: number; rmin: number; dmax: number } | null {
    if (!this.renorm) return null;
    return tf.tidy(() => {
      const limits = this.stepLimits();
      const value = (v: number | tf.Tensor) => (typeof v === 'number' ? v : v.dataSync()[0]);
      return { rmax: value(limits.rmax), rmin: value(limits.rmin), dmax: value(limits.dmax) };
    });
  }

  /**
   * {@link BatchNorm.currentRenormClipping} without a synchronous read: the ramped limits are
   * computed on the device and read with `tensor.data()`, which lets webgl and webgpu finish
   * their queue without blocking. Same numbers; null without renorm.
   */
  async currentRenormClippingAsync(): Promise<{ rmax: number; rmin: number; dmax: number } | null> {
    if (!this.renorm) return null;
    const limits = this.stepLimits();
    const tensors = [limits.rmax, limits.rmin, limits.dmax].filter(
      (v): v is tf.Tensor => typeof v !== 'number',
    );
    try {
      const value = async (v: number | tf.Tensor) =>
        typeof v === 'number' ? v : (await v.data())[0];
      return {
        rmax: await value(limits.rmax),
        rmin: await value(limits.rmin),
        dmax: await value(limits.dmax),
      };
    } finally {
      tf.dispose(tensors);
    }
  }

  /**
   * Normalizes `x` (a batch, or a run of `groups` equal virtual batches along axis 0) in training
   * mode: moments per group, the renorm correction when `limits` is given, the fused-backward
   * transform. Returns the output in `x`'s shape and the moments (keepDims, with a leading group
   * axis when `groups` > 1).
   */
  private normalizeBlock(
    x: tf.Tensor,
    weights: tf.Tensor | null,
    axis: number,
    groups: number,
    limits: RenormLimits | null,
  ): { y: tf.Tensor; moments: BatchMoments } {
    const grouped = groups > 1;
    const split = (t: tf.Tensor) =>
      grouped ? tf.reshape(t, [groups, t.shape[0] / groups, ...t.shape.slice(1)]) : t;
    const xs = split(x);
    const channelAxis = grouped ? axis + 1 : axis;
    const axes = reductionAxes(xs.rank, channelAxis).filter((a) => !grouped || a !== 0);
    const w = weights ? split(weights) : null;
    const moments = w ? maskedBatchMoments(xs, w, axes) : batchMoments(xs, axes);
    let renorm;
    if (limits) {
      // A [C] vector broadcasts along the last axis as it is; any other layout needs its shape.
      const shape = channelShape(xs.shape, channelAxis);
      const along = (v: tf.Tensor) => (channelAxis === xs.rank - 1 ? v : tf.reshape(v, shape));
      renorm = {
        mean: along((this.renormMean ?? this.movingMean).read()),
        variance: along((this.renormVariance ?? this.movingVariance).read()),
        limits,
      };
    }
    const y = normalizeTraining(
      xs,
      moments,
      this.gamma?.read() ?? null,
      this.beta?.read() ?? null,
      this.epsilon,
      channelAxis,
      { axes, renorm },
    );
    return { y: grouped ? tf.reshape(y, x.shape) : y, moments };
  }

  /**
   * One Ghost BatchNorm training step over `blocks` (full virtual batches, then a remainder):
   * normalizes each virtual batch with its own moments, then updates the running statistics once
   * with the pooled statistics of {@link poolVirtualBatchStatistics}.
   */
  private ghostStep(
    x: tf.Tensor,
    weights: tf.Tensor | null,
    axis: number,
    blocks: ReturnType<typeof virtualBatches>,
    limits: RenormLimits | null,
    minCount: number,
  ): tf.Tensor {
    // One pass per virtual batch on cpu, one grouped pass per run of equal virtual batches
    // elsewhere: whichever the bench measured faster (see oneBlockPerVirtualBatch).
    const runs = tf.getBackend() === 'cpu' ? oneBlockPerVirtualBatch(blocks) : blocks;
    const channels = x.shape[axis];
    const outputs: tf.Tensor[] = [];
    const means: tf.Tensor[] = [];
    const variances: tf.Tensor[] = [];
    const counts: number[] = [];
    const countTensors: tf.Tensor[] = [];
    // One split rather than a slice per run: the gradient of a split is one concat, that of each
    // slice a full-size pad (and the pads are then added).
    const sizes = runs.map((b) => b.groups * b.size);
    const split = (t: tf.Tensor) => (runs.length === 1 ? [t] : tf.split(t, sizes, 0));
    const xParts = split(x);
    const weightParts = weights ? split(weights) : null;
    for (const [i, block] of runs.entries()) {
      const { y, moments } = this.normalizeBlock(
        xParts[i],
        weightParts ? weightParts[i] : null,
        axis,
        block.groups,
        limits,
      );
      outputs.push(y);
      means.push(tf.reshape(moments.mean, [block.groups, channels]));
      variances.push(tf.reshape(moments.variance, [block.groups, channels]));
      if (typeof moments.count === 'number') {
        for (let g = 0; g < block.groups; g++) counts.push(moments.count);
        if (moments.count < minCount) this.warnSkippedVirtualBatch(x.shape, moments.count);
      } else {
        countTensors.push(tf.reshape(moments.count, [block.groups, 1]));
      }
    }
    const pooled = poolVirtualBatchStatistics(
      tf.concat(means, 0),
      tf.concat(variances, 0),
      countTensors.length > 0 ? tf.concat(countTensors, 0) : counts,
      this.varianceCorrection,
    );
    if (typeof pooled.count !== 'number' || pooled.count >= minCount) {
      this.updateStatistics(pooled.mean, pooled.variance, pooled.count, minCount);
    }
    return outputs.length === 1 ? outputs[0] : tf.concat(outputs, 0);
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

  /** Says once per layer why a virtual batch with m < 2 is left out of the running statistics. */
  private warnSkippedVirtualBatch(shape: number[], m: number): void {
    if (this.warnedSkippedBatch || this.varianceCorrection !== 'unbiased') return;
    this.warnedSkippedBatch = true;
    console.warn(
      `${this.describe()}: the last virtual batch of a training batch has m = ${m} element(s) ` +
        `per channel (input shape ${JSON.stringify(shape)}, virtualBatchSize ` +
        `${this.virtualBatchSize}); under varianceCorrection 'unbiased' the factor m/(m−1) is ` +
        'undefined for m < 2, so that virtual batch is left out of the update of moving_mean and ' +
        'moving_variance (the other virtual batches update them; its output is β, as for a batch ' +
        'of one). This warning is shown once per layer.',
    );
  }

  /**
   * moving ← moving − (moving − value)·d, with d = 1 − momentum (the built-in's formula), or
   * d = 1/n for the n-th batch in cumulative mode, which makes moving the mean of all n values;
   * with renorm, the same for `renorm_mean` / `renorm_variance` with d = 1 − renormMomentum.
   * Per channel, a non-finite μ_B or fed variance, or fewer than `minCount` counted elements,
   * leaves that channel as it was (selected on the device, never read back).
   * @param mean per-channel batch mean `[C]`.
   * @param variance per-channel variance to feed (Bessel-corrected under 'unbiased') `[C]`.
   * @param count m (a number), or a `[1]` tensor under a mask.
   */
  private updateStatistics(
    mean: tf.Tensor,
    variance: tf.Tensor,
    count: number | tf.Tensor,
    minCount: number,
  ): void {
    tf.tidy(() => {
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
      const updates: Array<[tf.LayerVariable, tf.Tensor, number | tf.Tensor]> = [
        [this.movingMean, mean, decay],
        [this.movingVariance, variance, decay],
      ];
      if (this.renormMean && this.renormVariance) {
        const renormDecay = 1 - (this.renormMomentum as number);
        updates.push(
          [this.renormMean, mean, renormDecay],
          [this.renormVariance, variance, renormDecay],
        );
      }
      for (const [variable, value, d] of updates) {
        variable.write(guardedMovingAverage(variable.read(), value, d, usable));
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
      renorm: this.renorm,
      virtualBatchSize: this.virtualBatchSize,
      ...this.affine.initializerConfig(),
      movingMeanInitializer: serializeKerasObject(this.movingMeanInitializer),
      movingVarianceInitializer: serializeKerasObject(this.movingVarianceInitializer),
      ...this.affine.penaltyConfig(),
    };
    if (this.renorm) {
      // JSON has no Infinity: an unlimited bound is left out (a missing key is no limit).
      const clipping: tf.serialization.ConfigDict = {};
      for (const [key, value] of Object.entries(this.renormClipping)) {
        if (typeof value === 'number' && Number.isFinite(value)) clipping[key] = value;
      }
      config.renormClipping = clipping;
      config.renormMomentum = this.renormMomentum;
      if (this.renormRamp) {
        config.renormRamp = { ...this.renormRamp } as tf.serialization.ConfigDict;
      }
    }
    return { ...super.getConfig(), ...config };
  }
}

const RENORM_CLIPPING_KEYS = optionSpec<RenormClipping>({
  rmax: 'number|null',
  rmin: 'number|null',
  dmax: 'number|null',
});
const RENORM_RAMP_KEYS = optionSpec<RenormRamp>({
  start: 'number|null',
  rmaxEnd: 'number',
  dmaxEnd: 'number|null',
});

/** A bound of renorm_clipping: a number (Infinity allowed where no limit makes sense) or null. */
function isBound(value: unknown): value is number | null | undefined {
  return value == null || (typeof value === 'number' && !Number.isNaN(value));
}

/**
 * Checks the Batch Renormalization arguments of `args` and returns them with their defaults. The
 * renorm-only arguments without `renorm: true` are an error (they would silently do nothing).
 */
function checkRenormArgs(
  owner: string,
  args: BatchNormArgs,
): { renorm: boolean; clipping: RenormClipping; momentum: number | null; ramp: RenormRamp | null } {
  const renorm = args.renorm ?? false;
  if (typeof renorm !== 'boolean') {
    throw invalidArgument(owner, 'renorm', args.renorm, 'to be true or false');
  }
  if (!renorm) {
    for (const key of ['renormClipping', 'renormMomentum', 'renormRamp'] as const) {
      if (args[key] != null) {
        throw invalidArgument(
          owner,
          key,
          args[key],
          'to be given only with renorm: true',
          'Add renorm: true to use Batch Renormalization, or remove it.',
        );
      }
    }
    return { renorm, clipping: {}, momentum: null, ramp: null };
  }
  const clipping = args.renormClipping ?? {};
  checkOptionKeys(`${owner} renormClipping`, clipping, RENORM_CLIPPING_KEYS, 'option');
  const { rmax, rmin, dmax } = clipping;
  const example = 'The paper ends at {rmax: 3, dmax: 5}.';
  if (!isBound(rmax) || (rmax != null && rmax < 1)) {
    throw invalidArgument(
      owner,
      'renormClipping.rmax',
      rmax,
      '≥ 1 (r = σ_B/σ is clipped to [1/rmax, rmax], which must contain 1)',
      `rmax = 1 with dmax = 0 is plain BatchNorm. ${example}`,
    );
  }
  if (!isBound(rmin) || (rmin != null && !(rmin >= 0 && rmin <= 1))) {
    throw invalidArgument(
      owner,
      'renormClipping.rmin',
      rmin,
      'in [0, 1] (the lower limit of r = σ_B/σ must not exclude 1)',
      "Leave it out for 1/rmax, the paper's choice.",
    );
  }
  if (!isBound(dmax) || (dmax != null && dmax < 0)) {
    throw invalidArgument(
      owner,
      'renormClipping.dmax',
      dmax,
      '≥ 0 (d = (μ_B − μ)/σ is clipped to [−dmax, dmax])',
      example,
    );
  }
  const momentum = args.renormMomentum ?? null;
  if (momentum !== null && !(typeof momentum === 'number' && momentum >= 0 && momentum < 1)) {
    throw invalidArgument(
      owner,
      'renormMomentum',
      args.renormMomentum,
      'in [0, 1), or null',
      'It is the momentum of separate renorm_mean / renorm_variance (tf.keras 2 used 0.99); ' +
        'null makes r and d use the moving statistics.',
    );
  }
  let ramp: RenormRamp | null = null;
  if (args.renormRamp != null) {
    ramp = args.renormRamp;
    checkOptionKeys(`${owner} renormRamp`, ramp, RENORM_RAMP_KEYS, 'option');
    if (!(rmax != null && Number.isFinite(rmax) && dmax != null && Number.isFinite(dmax))) {
      throw invalidArgument(
        owner,
        'renormClipping',
        clipping,
        'to have finite rmax and dmax with renormRamp (the values the ramp ends at)',
        `Use e.g. renormClipping: {rmax: 3, dmax: 5}.`,
      );
    }
    const start = ramp.start ?? 0;
    if (!(Number.isFinite(start) && start >= 0)) {
      throw invalidArgument(owner, 'renormRamp.start', ramp.start, 'to be a finite number ≥ 0');
    }
    for (const key of ['rmaxEnd', 'dmaxEnd'] as const) {
      const end = key === 'dmaxEnd' ? (ramp.dmaxEnd ?? ramp.rmaxEnd) : ramp.rmaxEnd;
      if (!(typeof end === 'number' && Number.isFinite(end) && end > start)) {
        throw invalidArgument(
          owner,
          `renormRamp.${key}`,
          ramp[key],
          `to be a finite step > start (${start})`,
          'The paper relaxes r_max until step 40000 and d_max until 25000, from step 5000.',
        );
      }
    }
    ramp = { ...ramp };
  }
  return { renorm, clipping: { ...clipping }, momentum, ramp };
}
