/**
 * One configuration of the vanishing-gradient experiment: gradient norms and activation statistics
 * on a fixed probe batch at initialization, training with the `GradientFlow` callback, held-out
 * accuracy.
 */
import * as tf from '@tensorflow/tfjs';
import {
  activationStats,
  ClipOptimizer,
  clipOptimizer,
  firstLastRatio,
  GradientFlow,
  gradientNorms,
  LayerActivationStats,
  LayerGradientNorm,
  mixSeed,
  recalibrateBatchNorm,
} from 'tfjs-dropnorm';
import { SEED_PURPOSE, withSeededMathRandom } from '../lib/random';
import { buildModel, CLIP_NORM, Config, MOMENTUM, NetShape } from './configs';

/** Training settings shared by every configuration. */
export interface TrainSettings extends NetShape {
  /** Most epochs; training stops earlier once the validation loss plateaus (see {@link PLATEAU}). */
  epochs: number;
  batchSize: number;
  /** SGD learning rate. */
  lr: number;
  seed: number;
}

/**
 * The training digits, the validation digits (the stopping rule watches their loss), the held-out
 * digits (reported) and the probe batch the diagnostics run on.
 */
export interface Data {
  xs: tf.Tensor2D;
  ys: tf.Tensor2D;
  valXs: tf.Tensor2D;
  valYs: tf.Tensor2D;
  testXs: tf.Tensor2D;
  testYs: tf.Tensor2D;
  probe: { xs: tf.Tensor2D; ys: tf.Tensor2D };
}

/**
 * The plateau rule: stop when the validation loss has not improved on its best by `minDelta` for
 * `patience` epochs (`tf.callbacks.earlyStopping` on 'val_loss'; Prechelt 1998). A net that does
 * not learn stops after patience + 1 epochs; a learning one runs until its validation loss stops
 * falling. A run that reaches the epoch budget instead has not converged, and the report says so.
 */
export const PLATEAU = { monitor: 'val_loss', minDelta: 0.005, patience: 3 };

/** Mean softmax cross-entropy from logits (numerically stable: log-sum-exp). */
function softmaxCrossEntropy(yTrue: tf.Tensor, logits: tf.Tensor): tf.Tensor {
  return tf.losses.softmaxCrossEntropy(yTrue, logits);
}

/** Everything measured for one configuration. */
export interface Result {
  name: string;
  description: string;
  /** ‖∂L/∂W⁽ˡ⁾‖ of each Dense kernel l = 1…depth on the probe batch, before training. */
  gradInit: number[];
  /** The same after training. */
  gradFinal: number[];
  ratioInit: number;
  ratioFinal: number;
  /**
   * ‖∂L/∂W⁽²⁾‖ / ‖∂L/∂W⁽ᴸ⁾‖ at init: the ratio without the input layer, whose gradient xᵀδ₁
   * also scales with the 784-pixel input.
   */
  ratioHiddenInit: number;
  /** First/last ratio after each epoch. */
  ratioPerEpoch: number[];
  /** Largest finite kernel-gradient norm in any record (init and after every epoch). */
  maxGradNorm: number;
  /** Some recorded kernel-gradient norm was NaN or Infinity. */
  nonFiniteGrad: boolean;
  /** Training loss of every batch, in order. */
  lossPerBatch: number[];
  /** Mean training loss of each epoch. */
  lossPerEpoch: number[];
  /** Validation loss after each epoch (what the plateau rule watches). */
  valLossPerEpoch: number[];
  finalLoss: number;
  /** Largest finite training loss of any batch. */
  peakLoss: number;
  /** A NaN or Infinity training loss occurred. */
  nonFiniteLoss: boolean;
  /** Every loss and every gradient norm recorded was finite. */
  allFinite: boolean;
  /** Held-out accuracy; for nets with BN after `recalibrateBatchNorm` on the training digits. */
  heldOutAccuracy: number;
  /** For nets with BN, the held-out accuracy with the moving statistics training left (else null). */
  heldOutAccuracyBeforeRecalibration: number | null;
  /** Epochs trained before the plateau rule (or the budget) stopped training. */
  epochsRun: number;
  /** What ended training: the plateau rule, the epoch budget (not converged), or an error. */
  stoppedBy: 'plateau' | 'budget' | 'error';
  /** Held-out accuracy of every seed (filled in by main; this run's seed first). */
  heldOutAccuracySeeds: number[];
  /** Epochs trained by every seed (this run's seed first). */
  epochsRunSeeds: number[];
  /** What ended training, for every seed (this run's seed first). */
  stoppedBySeeds: Result['stoppedBy'][];
  /** Mean over sigmoid/tanh layers of the saturated fraction; null without such layers. */
  saturatedInit: number | null;
  saturatedFinal: number | null;
  /** Mean over relu layers of the dead-unit fraction; null without relu layers. */
  deadInit: number | null;
  deadFinal: number | null;
  /** Steps skipped by clipOptimizer because of non-finite gradients. */
  skippedSteps: number;
  /** An error that stopped this configuration's training, if any. */
  error: string | null;
  seconds: number;
}

function kernels(norms: readonly LayerGradientNorm[]): number[] {
  return norms.filter((n) => n.kernel !== null).map((n) => n.kernel as number);
}

function meanOf(stats: readonly LayerActivationStats[], key: 'saturated' | 'dead'): number | null {
  const values = stats.map((s) => s[key]).filter((v): v is number => v !== null);
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
}

function mean(values: readonly number[]): number {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : NaN;
}

/**
 * Trains one configuration and records its diagnostics. `index` is its position, which seeds
 * `Math.random` (tfjs's fit() shuffle draws from it); `onBatch` sees every batch's loss.
 */
export async function runConfig(
  config: Config,
  s: TrainSettings,
  data: Data,
  index: number,
  onBatch: (loss: number) => void,
): Promise<Result> {
  return withSeededMathRandom(mixSeed(s.seed, SEED_PURPOSE.mathRandom, index), () =>
    train(config, s, data, onBatch),
  );
}

async function train(
  config: Config,
  s: TrainSettings,
  data: Data,
  onBatch: (loss: number) => void,
): Promise<Result> {
  const started = Date.now();
  const { probe } = data;
  const model = buildModel(config, s, s.seed);
  const sgd = tf.train.momentum(s.lr, MOMENTUM);
  const optimizer = config.clip ? clipOptimizer(sgd, { globalClipNorm: CLIP_NORM }) : sgd;
  model.compile({ optimizer, loss: softmaxCrossEntropy });

  const initGrad = gradientNorms(model, probe.xs, probe.ys);
  const initActivations = activationStats(model, probe.xs);
  const flow = new GradientFlow({ x: probe.xs, y: probe.ys, every: 1 });
  const lossPerBatch: number[] = [];
  const lossPerEpoch: number[] = [];
  const valLossPerEpoch: number[] = [];
  let epochLosses: number[] = [];
  const recorder = new tf.CustomCallback({
    onBatchEnd: async (_batch, logs) => {
      const loss = logs?.loss ?? NaN;
      lossPerBatch.push(loss);
      epochLosses.push(loss);
      onBatch(loss);
    },
    onEpochEnd: async (_epoch, logs) => {
      valLossPerEpoch.push(logs?.val_loss ?? NaN);
      lossPerEpoch.push(mean(epochLosses));
      epochLosses = [];
    },
  });
  let error: string | null = null;
  try {
    await model.fit(data.xs, data.ys, {
      epochs: s.epochs,
      batchSize: s.batchSize,
      shuffle: true,
      verbose: 0,
      validationData: [data.valXs, data.valYs],
      callbacks: [flow, recorder, tf.callbacks.earlyStopping(PLATEAU)],
      yieldEvery: 'never',
    });
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
  }
  const last = flow.history[flow.history.length - 1];
  const finalGrad = last ? last.gradients : gradientNorms(model, probe.xs, probe.ys);
  const finalActivations = last ? last.activations : activationStats(model, probe.xs);
  const accuracy = () =>
    tf.tidy(() => {
      const predicted = (model.predict(data.testXs) as tf.Tensor).argMax(-1);
      return tf.mean(tf.cast(tf.equal(predicted, data.testYs.argMax(-1)), 'float32')).dataSync()[0];
    });
  // BN's moving statistics lag behind the weights: recalibrate them on the training digits before
  // evaluating (exact population statistics of the final weights), and keep the lagging number too.
  const before = config.batchNorm ? accuracy() : null;
  if (config.batchNorm && error === null) await recalibrateBatchNorm(model, data.xs);
  const heldOutAccuracy = accuracy();
  const stoppedBy: Result['stoppedBy'] =
    error !== null ? 'error' : lossPerEpoch.length < s.epochs ? 'plateau' : 'budget';
  const allNorms = [initGrad, ...flow.history.map((r) => r.gradients)].flatMap(kernels);
  const result: Result = {
    name: config.name,
    description: config.description,
    gradInit: kernels(initGrad),
    gradFinal: kernels(finalGrad),
    ratioInit: firstLastRatio(initGrad),
    ratioFinal: firstLastRatio(finalGrad),
    ratioHiddenInit: firstLastRatio(initGrad.filter((n) => n.kernel !== null).slice(1)),
    ratioPerEpoch: flow.history.map((r) => firstLastRatio(r.gradients)),
    maxGradNorm: Math.max(0, ...allNorms.filter((n) => Number.isFinite(n))),
    nonFiniteGrad: allNorms.some((n) => !Number.isFinite(n)),
    lossPerBatch,
    lossPerEpoch,
    valLossPerEpoch,
    finalLoss: lossPerEpoch.length ? lossPerEpoch[lossPerEpoch.length - 1] : NaN,
    peakLoss: Math.max(0, ...lossPerBatch.filter((l) => Number.isFinite(l))),
    nonFiniteLoss: lossPerBatch.some((l) => !Number.isFinite(l)),
    allFinite:
      lossPerBatch.every((l) => Number.isFinite(l)) && allNorms.every((n) => Number.isFinite(n)),
    heldOutAccuracy,
    heldOutAccuracyBeforeRecalibration: before,
    epochsRun: lossPerEpoch.length,
    stoppedBy,
    heldOutAccuracySeeds: [heldOutAccuracy],
    epochsRunSeeds: [lossPerEpoch.length],
    stoppedBySeeds: [stoppedBy],
    saturatedInit: meanOf(initActivations, 'saturated'),
    saturatedFinal: meanOf(finalActivations, 'saturated'),
    deadInit: meanOf(initActivations, 'dead'),
    deadFinal: meanOf(finalActivations, 'dead'),
    skippedSteps: optimizer instanceof ClipOptimizer ? optimizer.skippedSteps : 0,
    error,
    seconds: (Date.now() - started) / 1000,
  };
  model.dispose();
  optimizer.dispose();
  return result;
}
