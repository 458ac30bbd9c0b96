/**
 * Drop-rate schedules.
 *
 * - DropBlock (Ghiasi et al. 2018, arXiv:1810.12890, §3 "Scheduled DropBlock") found a fixed drop
 *   rate from the start of training hurts, and ramps it linearly from 0 to the target:
 *   {@link DropRateScheduler}.
 * - Stochastic depth (Huang et al. 2016, "Deep Networks with Stochastic Depth", arXiv:1603.09382,
 *   eq. 4, the "linear decay rule") drops deeper blocks more often; timm's `drop_path_rate` spaces
 *   the rates linearly from 0 to the maximum over the blocks: {@link dropPathRates}.
 *
 * The pack's layers read `rate` at every call (tfjs layers run eagerly; nothing is traced or
 * compiled), so a new rate takes effect at the next call, with no rebuild and no new tensors.
 */
import * as tf from '@tensorflow/tfjs';
import { checkOptionKeys, describeLayer, invalidArgument, optionSpec } from '../errors';
import { checkRate } from '../ops/dropout';
import { StochasticLayer } from '../layers/stochastic';
import { walkLayers } from '../layers/util';

/**
 * Per-block drop rates of stochastic depth for `depth` residual blocks, linear in the block index
 * from 0 to `maxRate`, as timm's `drop_path_rate` (`torch.linspace(0, drop_path_rate, depth)`):
 *
 *   rate_i = maxRate · i / (depth − 1),   i = 0 … depth − 1   ([0] when depth = 1).
 *
 * Huang et al.'s linear decay rule, p_l = l/L · (1 − p_L) for blocks l = 1 … L, starts one step
 * later: it is `dropPathRates(L + 1, 1 − p_L).slice(1)`.
 *
 * ```ts
 * const rates = dropPathRates(12, 0.1); // [0, 0.00909…, …, 0.1]
 * const blocks = rates.map((rate) => layers.dropPath({ rate }));
 * ```
 */
export function dropPathRates(depth: number, maxRate: number): number[] {
  const owner = 'dropPathRates';
  if (typeof depth !== 'number' || !Number.isInteger(depth) || depth < 1) {
    throw invalidArgument(
      owner,
      'depth',
      depth,
      'to be a positive integer (the number of residual blocks)',
    );
  }
  checkRate(owner, maxRate);
  if (depth === 1) return [0];
  return Array.from({ length: depth }, (_, i) =>
    i === depth - 1 ? maxRate : (maxRate * i) / (depth - 1),
  );
}

/** The unit a {@link DropRateScheduler} counts: epochs or batches (optimizer steps). */
export type ScheduleUnit = 'epoch' | 'batch';

/** Options every {@link DropRateScheduler} takes, whichever schedule it runs. */
export interface DropRateSchedulerCommonOptions {
  /**
   * Count epochs (default; the step is `fit`'s epoch index) or batches (counted across the fits of
   * one model).
   */
  unit?: ScheduleUnit;
  /**
   * The layers to schedule: the pack's dropout layers as objects, names, or paths inside nested
   * models and wrappers (`'encoder/drop_block'`, `'time_distributed/dropout'`). Default: every
   * dropout layer of the pack in the model being trained.
   */
  layers?: (StochasticLayer | string)[];
}

/** A linear ramp: {@link DropRateScheduler} with `steps` (and optionally `start`). */
export interface DropRateRampOptions extends DropRateSchedulerCommonOptions {
  /**
   * Length of the linear ramp, in `unit`s: the rate goes from `start` at step 0 to the layer's
   * target at step `steps` and stays there.
   */
  steps: number;
  /** Rate at step 0 of the ramp (default 0, as Scheduled DropBlock). */
  start?: number;
  schedule?: never;
}

/** A custom schedule: {@link DropRateScheduler} with `schedule` (no `steps`, no `start`). */
export interface DropRateFunctionOptions extends DropRateSchedulerCommonOptions {
  /**
   * The rate of a layer at `step`, given its `target` (its rate when training of its model first
   * began). Every value is checked like the layers' `rate` argument.
   */
  schedule: (step: number, target: number) => number;
  steps?: never;
  start?: never;
}

/**
 * Options of {@link DropRateScheduler}: a linear ramp (`steps`, optionally `start`) or a function
 * (`schedule`), never both (the type says so, and the constructor checks it for JavaScript).
 */
export type DropRateSchedulerOptions = DropRateRampOptions | DropRateFunctionOptions;

/** Every key of the options, in one flat type (for the unknown-key check). */
type AnyDropRateSchedulerOptions = DropRateSchedulerCommonOptions & {
  steps?: number;
  start?: number;
  schedule?: (step: number, target: number) => number;
};

const OPTION_KEYS = optionSpec<AnyDropRateSchedulerOptions>({
  steps: 'number',
  start: 'number',
  schedule: 'function',
  unit: 'any',
  layers: 'array',
});

/** tfjs's dropout layers, which convertToDropnorm turns into the pack's (with a settable rate). */
const BUILTIN_DROPOUT = ['Dropout', 'SpatialDropout1D', 'GaussianDropout', 'AlphaDropout'];

/**
 * A `model.fit` callback that sets the drop rate of the pack's dropout layers before every epoch
 * (or batch). Each layer's **target** is its `rate` when the scheduler first sees it (the first
 * `onTrainBegin` of a fit of its model), so a layer built with `rate: 0.1` is ramped to 0.1:
 *
 *   rate(s) = start + (target − start) · min(1, s / steps)        (linear ramp, Ghiasi et al. 2018)
 *
 * or `schedule(s, target)`. The step s is the epoch index `fit` reports (so `initialEpoch`
 * continues a schedule) or, with `unit: 'batch'`, the number of batches of this model the
 * scheduler has seen. The rates stay where the schedule leaves them after training (at the target
 * once a ramp is over), and `getConfig`/`save` write the current rate.
 *
 * The layers are found in the model being trained at each `fit` (`onTrainBegin`), so one scheduler
 * can serve several models (a shared callbacks array, k-fold training): each model is scheduled
 * on its own, from its own targets and batch count, and a layer keeps its target across fits, so a
 * later `fit` of the same model continues from it. Layers given as objects must belong to the
 * model being trained (else the fit fails at its start, with the reason).
 *
 * ```ts
 * const drop = layers.dropBlock2d({ rate: 0.1, blockSize: 5 });
 * await model.fit(xs, ys, { epochs: 20, callbacks: [new DropRateScheduler({ steps: 10 })] });
 * ```
 */
export class DropRateScheduler extends tf.Callback {
  private readonly options: AnyDropRateSchedulerOptions;
  private readonly unit: ScheduleUnit;
  /** Each scheduled layer's target, kept across fits (a layer's rate changes as it is scheduled). */
  private readonly targets = new WeakMap<StochasticLayer, number>();
  /** Batches seen per model (unit 'batch'). */
  private readonly batches = new WeakMap<tf.LayersModel, number>();
  /** The layers of the model in the current fit, with their targets. */
  private current: Map<StochasticLayer, number> | null = null;

  constructor(options: DropRateSchedulerOptions) {
    super();
    const owner = 'DropRateScheduler';
    if (options == null || typeof options !== 'object') {
      throw invalidArgument(owner, 'options', options, 'to be an object with steps or schedule');
    }
    checkOptionKeys(owner, options, OPTION_KEYS);
    const { steps, schedule, start } = options as AnyDropRateSchedulerOptions;
    if ((steps == null) === (schedule == null)) {
      throw invalidArgument(
        owner,
        'steps and schedule',
        `${steps} and ${typeof schedule}`,
        'to be given one at a time',
        'steps: N ramps linearly over N epochs (or batches); schedule: (step, target) => rate is a custom schedule.',
      );
    }
    if (steps != null && !(Number.isInteger(steps) && steps >= 1)) {
      throw invalidArgument(owner, 'steps', steps, 'to be a positive integer');
    }
    if (schedule != null && typeof schedule !== 'function') {
      throw invalidArgument(
        owner,
        'schedule',
        typeof schedule,
        'to be a function (step, target) => rate',
      );
    }
    if (schedule != null && start != null) {
      throw invalidArgument(
        owner,
        'start',
        start,
        'to be omitted with schedule (it is the first rate of the linear ramp, steps)',
        'Return the first rate from schedule(0, target) instead.',
      );
    }
    if (start != null) checkRate(owner, start);
    const unit = options.unit ?? 'epoch';
    if (unit !== 'epoch' && unit !== 'batch') {
      throw invalidArgument(owner, 'unit', options.unit, "to be 'epoch' or 'batch'");
    }
    if (options.layers != null && !Array.isArray(options.layers)) {
      throw invalidArgument(
        owner,
        'layers',
        typeof options.layers,
        'to be an array of layers or names',
      );
    }
    this.options = { ...options };
    this.unit = unit;
  }

  /** The rate of a layer with `target` at `step`. */
  rateAt(step: number, target: number): number {
    const { steps, start = 0, schedule } = this.options;
    if (schedule) return schedule(step, target);
    return start + (target - start) * Math.min(1, step / (steps as number));
  }

  /** The scheduled layers of the model being trained, and their targets. */
  private resolve(): Map<StochasticLayer, number> {
    const owner = 'DropRateScheduler';
    const all = walkLayers(this.model);
    const pack = all.filter((l) => l.layer instanceof StochasticLayer);
    let chosen: StochasticLayer[];
    if (this.options.layers == null) {
      if (pack.length === 0) {
        throw invalidArgument(
          owner,
          'dropout layers of tfjs-dropnorm in the model',
          'none',
          'to exist',
          all.some((l) => BUILTIN_DROPOUT.includes(l.layer.getClassName()))
            ? "Only the pack's layers have a settable rate; convert the built-in ones with convertToDropnorm and train the converted model."
            : "The model has no dropout layer to schedule; add one of the pack's, e.g. layers.dropout({rate: 0.1}).",
        );
      }
      chosen = pack.map((l) => l.layer as StochasticLayer);
    } else {
      chosen = this.options.layers.map((wanted) => {
        if (wanted instanceof StochasticLayer) {
          if (!all.some((l) => l.layer === wanted)) {
            throw invalidArgument(
              owner,
              'layers',
              describeLayer(wanted),
              `to be layers of the model being trained ('${this.model.name}')`,
              'Layers given as objects belong to one model; to schedule several models with one scheduler, give the layers by name or path (or omit layers).',
            );
          }
          return wanted;
        }
        const found = all.find((l) => l.path === wanted || l.layer.name === wanted);
        if (found == null || !(found.layer instanceof StochasticLayer)) {
          throw invalidArgument(
            owner,
            'layers',
            wanted,
            'to name dropout layers of the pack in the model',
            (found
              ? `${describeLayer(found.layer)} is not one of the pack's dropout layers; convert built-ins with convertToDropnorm. `
              : '') +
              `The pack's dropout layers in the model: ${pack.map((l) => `'${l.path}'`).join(', ') || 'none'}.`,
          );
        }
        return found.layer;
      });
    }
    for (const layer of chosen) if (!this.targets.has(layer)) this.targets.set(layer, layer.rate);
    return new Map(chosen.map((layer) => [layer, this.targets.get(layer) as number]));
  }

  private apply(step: number): void {
    if (this.current == null) this.current = this.resolve(); // a fit that skipped onTrainBegin
    for (const [layer, target] of this.current) {
      const rate = this.rateAt(step, target);
      checkRate(`DropRateScheduler (${this.unit} ${step}, ${describeLayer(layer)})`, rate);
      layer.rate = rate;
    }
  }

  /** Finds the layers of the model being trained (targets read when first seen). */
  override async onTrainBegin(): Promise<void> {
    this.current = this.resolve();
  }

  /** Forgets the model of this fit (its targets and batch count stay for its next fit). */
  override async onTrainEnd(): Promise<void> {
    this.current = null;
  }

  /** Sets the rates of this epoch (unit 'epoch'). */
  override async onEpochBegin(epoch: number): Promise<void> {
    if (this.unit === 'epoch') this.apply(epoch);
  }

  /** Sets the rates of this batch (unit 'batch'). */
  override async onBatchBegin(): Promise<void> {
    if (this.unit === 'batch') this.apply(this.batches.get(this.model) ?? 0);
  }

  /** Counts the batch. */
  override async onBatchEnd(): Promise<void> {
    this.batches.set(this.model, (this.batches.get(this.model) ?? 0) + 1);
  }
}
