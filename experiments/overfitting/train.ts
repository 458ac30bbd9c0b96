/**
 * The training side of the overfitting experiment: one (seed, configuration) run with the same
 * initial weights, data order and epochs for every configuration of a seed, evaluation of the whole
 * train and held-out sets after every epoch, and Monte-Carlo dropout for the configuration that
 * gets it.
 */
import * as tf from '@tensorflow/tfjs';
import { mixSeed } from 'tfjs-dropnorm';
import { SEED_PURPOSE, withSeededMathRandom } from '../lib/random';
import { CurvePoint, runMetrics, RunMetrics } from '../lib/curves';
import { epochOrders, measuredRun, SeedDataCache, train } from '../lib/training';
import {
  buildModel,
  copyInitialWeights,
  initialWeights,
  ModelOptions,
  TrainOptions,
} from './configs';
import { McResult, monteCarlo } from './mc';

/** One (configuration, seed) training run. */
export interface RunResult {
  config: string;
  seed: number;
  /** Per epoch, index 0 = after epoch 1. */
  curve: CurvePoint[];
  /** Mean training-mode loss of each epoch as `model.fit` reports it (noise on; L2 penalty included). */
  fitLoss: number[];
  seconds: number;
}

/** Everything one (seed, configuration) task produces. */
export interface TaskResult {
  run: RunResult & { metrics: RunMetrics };
  /** Monte-Carlo dropout on the held-out digits, for the configuration that gets it. */
  mc: McResult | null;
  /** Tensors alive after the task minus before it (0 unless something leaks). */
  leaked: number;
}

/** Settings of a task: the model, the loop, the split and Monte-Carlo dropout. */
export interface TaskOptions extends ModelOptions, TrainOptions {
  trainSize: number;
  heldOutSize: number;
  validationSize: number;
  mcSamples: number;
  /** The configuration whose trained model gets Monte-Carlo dropout. */
  mcConfig: string;
}

/**
 * A seed's data, initial weights and epoch orders, built once and shared by every configuration
 * of the seed that runs in this process.
 */
export class SeedCache extends SeedDataCache<{ initial: tf.Tensor[][]; orders: Int32Array[] }> {
  constructor(o: TaskOptions) {
    super(
      o,
      (seed, data) => ({
        initial: initialWeights(o, seed),
        orders: epochOrders(data.nTrain, o.epochs, seed),
      }),
      ({ initial }) => tf.dispose(initial.flat()),
    );
  }
}

/**
 * Trains configuration `config` for seed `seed`: the result depends on (seed, config) only, not on
 * the process or on what ran before, so tasks can run in any order on any worker.
 */
export async function runTask(
  cache: SeedCache,
  o: TaskOptions,
  seed: number,
  config: string,
  onEpoch: (epoch: number, m: CurvePoint) => void = () => {},
): Promise<TaskResult> {
  const { data, initial, orders } = cache.get(seed);
  const { result, seconds, leaked } = await measuredRun(async () => {
    const model = buildModel(config, o, seed);
    try {
      copyInitialWeights(model, initial);
      const { curve, fitLoss } = await withSeededMathRandom(
        mixSeed(seed, SEED_PURPOSE.mathRandom),
        () => train(model, data, orders, { ...o, onEpoch }),
      );
      const mc =
        config === o.mcConfig
          ? monteCarlo(model, data, o.mcSamples, mixSeed(seed, SEED_PURPOSE.monteCarlo))
          : null;
      return { curve, fitLoss, mc };
    } finally {
      model.dispose();
    }
  });
  const { curve, fitLoss, mc } = result;
  return {
    run: { config, seed, curve, fitLoss, seconds, metrics: runMetrics(curve) },
    mc,
    leaked,
  };
}
