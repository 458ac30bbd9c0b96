/**
 * Watching gradient flow during `model.fit`: per-layer gradient norms (Glorot & Bengio 2010) and
 * activation health — saturated sigmoid/tanh units, whose derivative f′ nearly vanishes
 * (LeCun et al. 1998, "Efficient BackProp", §4.4), and dead ReLUs, which output 0 for every input
 * and so never receive a gradient again (Lu et al. 2019, "Dying ReLU and initialization",
 * arXiv:1903.06733).
 */
import * as tf from '@tensorflow/tfjs';
import { checkOptionKeys, invalidArgument, optionSpec } from '../errors';
import { withFrozenState } from './frozen_state';
import {
  checkProbeBatch,
  gradientNorms,
  isSparseLoss,
  LayerGradientNorm,
  LossSpec,
} from './gradient_norms';

/** |f′| below this counts as saturated. */
export const SATURATION_THRESHOLD = 0.01;

/** Activation statistics of one layer on the probe batch. */
export interface LayerActivationStats {
  layer: string;
  className: string;
  /** The activation the statistics are about. */
  activation: 'sigmoid' | 'tanh' | 'relu';
  /** Units per sample (product of the non-batch output dimensions). */
  units: number;
  /**
   * sigmoid/tanh: the fraction of (sample, unit) outputs with |f′| < 0.01, where f′ = s(1−s) for
   * sigmoid and 1 − t² for tanh, computed from the output. null for relu.
   */
  saturated: number | null;
  /** relu: the fraction of units whose output is 0 for every probe sample. null otherwise. */
  dead: number | null;
}

type Watched = { layer: tf.layers.Layer; activation: LayerActivationStats['activation'] };

function watchedActivation(layer: tf.layers.Layer): Watched['activation'] | null {
  if (layer.getClassName() === 'ReLU') {
    const config = layer.getConfig();
    return config.maxValue == null ? 'relu' : null;
  }
  const activation = layer.getConfig().activation;
  return activation === 'sigmoid' || activation === 'tanh' || activation === 'relu'
    ? activation
    : null;
}

const probes = new WeakMap<tf.LayersModel, { model: tf.LayersModel; watched: Watched[] } | null>();

/** A model sharing `model`'s weights whose outputs are the watched layers' outputs (cached). */
function probeModel(model: tf.LayersModel): { model: tf.LayersModel; watched: Watched[] } | null {
  if (probes.has(model)) return probes.get(model) ?? null;
  const watched: Watched[] = [];
  const outputs: tf.SymbolicTensor[] = [];
  for (const layer of model.layers) {
    const activation = watchedActivation(layer);
    if (!activation) continue;
    let output: tf.SymbolicTensor | tf.SymbolicTensor[];
    try {
      output = layer.output; // throws for a layer called more than once (shared layers)
    } catch {
      continue;
    }
    if (Array.isArray(output)) continue;
    watched.push({ layer, activation });
    outputs.push(output);
  }
  const probe =
    watched.length === 0 ? null : { model: tf.model({ inputs: model.inputs, outputs }), watched };
  probes.set(model, probe);
  return probe;
}

/**
 * Activation statistics of every sigmoid, tanh and relu layer (a layer's `activation` config, or a
 * `ReLU` layer without maxValue) on the batch `x`: saturated fraction (|f′| < 0.01) for sigmoid and
 * tanh, dead fraction (0 for every sample) for relu. Input → output order. The forward pass is in
 * training mode unless `training: false`; its state updates (BatchNorm statistics) are undone.
 */
export function activationStats(
  model: tf.LayersModel,
  x: tf.Tensor | tf.Tensor[],
  options: { training?: boolean } = {},
): LayerActivationStats[] {
  checkOptionKeys('activationStats', options, { training: 'boolean' });
  checkProbeBatch('activationStats', model, x, undefined, false, true);
  const probe = probeModel(model);
  if (!probe) return [];
  const training = options.training ?? true;
  const stats = withFrozenState(model, () =>
    tf.tidy(() => {
      const raw = probe.model.apply(x, { training });
      const outputs = Array.isArray(raw) ? raw : [raw];
      return tf.stack(
        outputs.map((o, i) => {
          const flat = tf.reshape(o as tf.Tensor, [o.shape[0] as number, -1]);
          const kind = probe.watched[i].activation;
          if (kind === 'relu') {
            return tf.mean(tf.cast(tf.lessEqual(tf.max(flat, 0), 0), 'float32'));
          }
          const derivative =
            kind === 'sigmoid' ? tf.mul(flat, tf.sub(1, flat)) : tf.sub(1, tf.square(flat));
          return tf.mean(tf.cast(tf.less(tf.abs(derivative), SATURATION_THRESHOLD), 'float32'));
        }),
      );
    }),
  );
  const values = stats.dataSync();
  stats.dispose();
  return probe.watched.map(({ layer, activation }, i) => {
    const shape = (layer.output as tf.SymbolicTensor).shape.slice(1);
    return {
      layer: layer.name,
      className: layer.getClassName(),
      activation,
      units: shape.reduce((n: number, d) => n * (d ?? 1), 1),
      saturated: activation === 'relu' ? null : values[i],
      dead: activation === 'relu' ? values[i] : null,
    };
  });
}

/** Options of {@link GradientFlow}. */
export interface GradientFlowOptions {
  /** Probe inputs: a fixed batch (owned by the caller, not disposed). */
  x: tf.Tensor | tf.Tensor[];
  /** Probe targets. */
  y: tf.Tensor;
  /** Loss to differentiate (default: the compiled loss); see {@link gradientNorms}. */
  loss?: LossSpec;
  /** Record every `every` epochs (or batches). Default 1. */
  every?: number;
  /** Count `every` in epochs (default) or batches (optimizer steps). */
  unit?: 'epoch' | 'batch';
  /** Also record once before the first step. Default false. */
  atTrainBegin?: boolean;
  /** Training-mode forward for the probe (default true); see {@link gradientNorms}. */
  training?: boolean;
  /** Record activation statistics too (default true). */
  activations?: boolean;
  /** Called with each record as it is made. */
  onRecord?: (record: GradientFlowRecord) => void;
}

// The options of GradientFlowOptions and their types (tsc checks the two agree).
const GRADIENT_FLOW_OPTIONS = optionSpec<GradientFlowOptions>({
  x: 'object|array',
  y: 'object',
  loss: 'function|string',
  every: 'number',
  unit: ['epoch', 'batch'],
  atTrainBegin: 'boolean',
  training: 'boolean',
  activations: 'boolean',
  onRecord: 'function',
});

/** One measurement of {@link GradientFlow}. */
export interface GradientFlowRecord {
  /** Epochs completed when recorded (0 before training). */
  epoch: number;
  /** Optimizer steps (batches) completed when recorded. */
  step: number;
  /** Per-layer gradient norms on the probe batch, at the weights of that moment. */
  gradients: LayerGradientNorm[];
  /** Activation statistics ([] when disabled or when no layer is watched). */
  activations: LayerActivationStats[];
}

/**
 * A `model.fit` callback recording, on a fixed probe batch, per-layer gradient norms
 * ({@link gradientNorms}) and activation statistics ({@link activationStats}) every `every` epochs
 * or batches: after epoch e when (e+1) mod every = 0, or after step s when s mod every = 0
 * (s counted from 1), plus once before training with `atTrainBegin`. Records go to
 * {@link GradientFlow.history}. The model's weights and BatchNorm statistics are left as they
 * are; no tensor is leaked.
 *
 * ```ts
 * const flow = new GradientFlow({ x: probeX, y: probeY, every: 1 });
 * await model.fit(xs, ys, { epochs: 5, callbacks: [flow] });
 * flow.history[4].gradients[0].kernel; // first layer, after epoch 5
 * ```
 */
export class GradientFlow extends tf.Callback {
  readonly history: GradientFlowRecord[] = [];
  private readonly every: number;
  private readonly unit: 'epoch' | 'batch';
  private step = 0;
  private epochsDone = 0;

  constructor(private readonly options: GradientFlowOptions) {
    super();
    checkOptionKeys('GradientFlow', options, GRADIENT_FLOW_OPTIONS);
    const every = options.every ?? 1;
    if (!Number.isInteger(every) || every < 1) {
      throw invalidArgument('GradientFlow', 'every', options.every, 'to be an integer ≥ 1');
    }
    const unit = options.unit ?? 'epoch';
    if (unit !== 'epoch' && unit !== 'batch') {
      throw invalidArgument('GradientFlow', 'unit', options.unit, "to be 'epoch' or 'batch'");
    }
    if (options.x == null || options.y == null) {
      throw invalidArgument('GradientFlow', 'x and y', null, 'to be a probe batch of tensors');
    }
    this.every = every;
    this.unit = unit;
  }

  /**
   * Called by `model.fit` before training: the probe batch is checked against the model here
   * (as {@link gradientNorms} checks it, and as fit checks its own x and y), so a mismatched probe fails before
   * the first epoch instead of at the first record.
   */
  override setModel(model: tf.LayersModel): void {
    const { x, y, loss } = this.options;
    checkProbeBatch('GradientFlow', model, x, y, isSparseLoss(model, loss));
    super.setModel(model);
  }

  /** Measures now and appends to {@link history}. */
  record(): GradientFlowRecord {
    const { x, y, loss, training } = this.options;
    const record: GradientFlowRecord = {
      epoch: this.epochsDone,
      step: this.step,
      gradients: gradientNorms(this.model, x, y, { loss, training }),
      activations:
        this.options.activations === false ? [] : activationStats(this.model, x, { training }),
    };
    this.history.push(record);
    this.options.onRecord?.(record);
    return record;
  }

  /** Records the state before training, when configured to. */
  override async onTrainBegin(): Promise<void> {
    if (this.options.atTrainBegin) this.record();
  }

  /** Records every `every` batches, when the unit is 'batch'. */
  override async onBatchEnd(): Promise<void> {
    this.step++;
    if (this.unit === 'batch' && this.step % this.every === 0) this.record();
  }

  /** Records every `every` epochs, when the unit is 'epoch'. */
  override async onEpochEnd(epoch: number): Promise<void> {
    this.epochsDone = epoch + 1;
    if (this.unit === 'epoch' && this.epochsDone % this.every === 0) this.record();
  }
}
