/**
 * One (seed, configuration) run of the CNN experiment: train with the seed's split, initial
 * kernels and epoch orders; then, for the nets with BatchNorm, the variance shift at every BN,
 * `recalibrateBatchNorm` on the training digits (dropout off) and the shift and held-out numbers
 * again.
 */
import * as tf from '@tensorflow/tfjs';
import { mixSeed, recalibrateBatchNorm } from 'tfjs-dropnorm';
import { CurvePoint, runMetrics, RunMetrics } from '../lib/curves';
import { SEED_PURPOSE, withSeededMathRandom } from '../lib/random';
import { epochOrders, evaluate, measuredRun, SeedDataCache, train } from '../lib/training';
import { buildModel, CnnOptions, configById } from './configs';
import { BatchNormShift, batchNorms, varianceShift } from './variance';

/** Settings of a run. */
export interface TaskOptions extends CnnOptions {
  trainSize: number;
  heldOutSize: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
}

/** Everything one run measures. */
export interface CnnRun {
  config: string;
  seed: number;
  /** Per epoch, index 0 = after epoch 1. */
  curve: CurvePoint[];
  metrics: RunMetrics;
  /** Trainable and non-trainable parameters (BN's moving statistics included). */
  params: number;
  /** Largest |bias| of a layer feeding a BN at the end (null when no biased layer feeds a BN). */
  maxBiasBeforeBn: number | null;
  /** For nets with BN: the variance shift on the held-out digits, then the same after recalibration. */
  batchNorm: {
    shift: BatchNormShift[];
    recalibratedShift: BatchNormShift[];
    /** Held-out and train numbers after `recalibrateBatchNorm`. */
    recalibrated: CurvePoint;
  } | null;
  seconds: number;
  /** Tensors alive after the run minus before it (0 unless something leaks). */
  leaked: number;
}

/** A seed's split and epoch orders, built once per process and shared by its configurations. */
export class SeedCache extends SeedDataCache<{ orders: Int32Array[] }> {
  constructor(o: TaskOptions) {
    super(o, (seed, data) => ({ orders: epochOrders(data.nTrain, o.epochs, seed) }));
  }
}

/** Largest |bias| of the layers whose output goes into a BN (directly). */
function maxBiasBeforeBn(model: tf.LayersModel): number | null {
  let max: number | null = null;
  model.layers.forEach((layer, i) => {
    const next = model.layers[i + 1];
    if (!next || !batchNorms(model).includes(next as never)) return;
    const bias = layer.weights.find((w) => w.originalName.endsWith('bias'));
    if (!bias) return;
    const value = tf.tidy(() => tf.max(tf.abs(bias.read())).dataSync()[0]);
    max = Math.max(max ?? 0, value);
  });
  return max;
}

// Inference-mode predicts of conv nets over a few thousand digits at once would hold every
// activation map in memory; evaluate in chunks.
const EVAL_BATCH = 500;

/** Trains configuration `config` for seed `seed` and measures it (see the module doc). */
export async function runTask(
  cache: SeedCache,
  o: TaskOptions,
  seed: number,
  config: string,
  onBatch: (status: string) => void = () => {},
): Promise<CnnRun> {
  const { data, orders } = cache.get(seed);
  const { result, seconds, leaked } = await measuredRun(async () => {
    const model = buildModel(configById(config), o, seed);
    try {
      let epoch = 1;
      const { curve } = await withSeededMathRandom(mixSeed(seed, SEED_PURPOSE.mathRandom), () =>
        train(model, data, orders, {
          learningRate: o.learningRate,
          batchSize: o.batchSize,
          evalBatchSize: EVAL_BATCH,
          onBatch: () => onBatch(`epoch ${epoch}`),
          onEpoch: (e) => (epoch = e + 1),
        }),
      );
      let batchNorm: CnnRun['batchNorm'] = null;
      if (batchNorms(model).length > 0) {
        const shift = varianceShift(model, data.xHeldOut, EVAL_BATCH);
        await recalibrateBatchNorm(model, data.xTrain, { batchSize: EVAL_BATCH });
        batchNorm = {
          shift,
          recalibratedShift: varianceShift(model, data.xHeldOut, EVAL_BATCH),
          recalibrated: evaluate(model, data, EVAL_BATCH),
        };
      }
      return {
        config,
        seed,
        curve,
        metrics: runMetrics(curve),
        params: model.countParams(),
        maxBiasBeforeBn: maxBiasBeforeBn(model),
        batchNorm,
      };
    } finally {
      model.dispose();
    }
  });
  return { ...result, seconds, leaked };
}
