/**
 * One (seed, setting, configuration) run of the small-batch experiment: a fixed number of Adam
 * steps on batches drawn as the setting says (i.i.d., or two classes per batch), then held-out
 * accuracy and, at every BN, the running / population variance ratio and the train/inference
 * output gap; for the pack's BN, the same again after `recalibrateBatchNorm`.
 */
import * as tf from '@tensorflow/tfjs';
import { mixSeed, recalibrateBatchNorm } from 'tfjs-dropnorm';
import { MNIST_CLASSES } from '../lib/mnist';
import { inferenceInputs } from '../lib/nets';
import { mulberry32, SEED_PURPOSE, shuffleInPlace } from '../lib/random';
import { EPSILON, measuredRun, SeedData, SeedDataCache } from '../lib/training';
import {
  buildModel,
  configById,
  NetOptions,
  NormKind,
  normLayers,
  Setting,
  Stream,
} from './configs';

/** Settings of a run. */
export interface TaskOptions extends NetOptions {
  trainSize: number;
  heldOutSize: number;
  learningRate: number;
  gapBatches: number;
}

/** What one run measures at one BN. */
export interface BnMeasure {
  /** Position among the net's BNs (0 = closest to the input). */
  index: number;
  /**
   * Mean over channels of moving_variance / population variance of the BN input over the held-out
   * digits, the net in inference mode (1 = the running variance is the variance inference sees).
   */
  varianceRatio: number;
  /**
   * Train/inference output gap: ‖y_train − y_inference‖ / ‖y_inference − β‖ on a batch of the
   * setting's size drawn as in training (held-out digits, the BN's input from the net in inference
   * mode, so only this BN's mode differs), mean over batches. 0 = the BN computes in training what
   * it computes at inference.
   */
  gap: number;
}

/** Everything one run measures. */
export interface SmallBatchRun {
  setting: string;
  config: NormKind;
  seed: number;
  heldOutAcc: number;
  heldOutLoss: number;
  /** Mean training loss over the last tenth of the steps (training mode). */
  finalTrainLoss: number;
  /** Per BN, input side first (empty without normalization). */
  bn: BnMeasure[];
  /** For the pack's BN: after `recalibrateBatchNorm` on the training digits. */
  recalibrated: { heldOutAcc: number; heldOutLoss: number; bn: BnMeasure[] } | null;
  seconds: number;
  /** Tensors alive after the run minus before it (0 unless something leaks). */
  leaked: number;
}

/** A seed's split as tensors and as labels, built once per process. */
export class SeedCache extends SeedDataCache<{ trainLabels: Int32Array }> {
  constructor(o: TaskOptions) {
    super(o, (_seed, _data, train) => ({ trainLabels: train.labels }));
  }
}

/** Indices of each class in `labels`. */
function byClass(labels: Int32Array): number[][] {
  const out = Array.from({ length: MNIST_CLASSES }, () => [] as number[]);
  labels.forEach((label, i) => out[label].push(i));
  return out;
}

/**
 * `steps` batches of `batchSize` indices into a set with `labels`: i.i.d. (consecutive chunks of
 * seeded permutations, a new one per pass) or two classes per batch (two distinct classes drawn
 * per step, half the batch from each, without repeats within the batch, then shuffled so that
 * Ghost BN's consecutive virtual batches mix both). Seeded by `seed`.
 */
export function batchIndices(
  labels: Int32Array,
  stream: Stream,
  batchSize: number,
  steps: number,
  seed: number,
): Int32Array[] {
  const random = mulberry32(seed);
  const n = labels.length;
  if (stream === 'iid') {
    const out: Int32Array[] = [];
    let order: number[] = [];
    for (let s = 0; s < steps; s++) {
      const batch: number[] = [];
      while (batch.length < batchSize) {
        if (order.length === 0) {
          order = shuffleInPlace(
            Array.from({ length: n }, (_, i) => i),
            random,
          );
        }
        batch.push(order.pop() as number);
      }
      out.push(Int32Array.from(batch));
    }
    return out;
  }
  const classes = byClass(labels);
  const half = batchSize / 2;
  return Array.from({ length: steps }, () => {
    const a = Math.floor(random() * MNIST_CLASSES);
    const b = (a + 1 + Math.floor(random() * (MNIST_CLASSES - 1))) % MNIST_CLASSES;
    const pick = (pool: number[]) => shuffleInPlace([...pool], random).slice(0, half);
    return Int32Array.from(shuffleInPlace([...pick(classes[a]), ...pick(classes[b])], random));
  });
}

// Inference-mode predicts over a thousand digits at once would hold every activation map.
const EVAL_BATCH = 500;

/** Held-out cross-entropy and accuracy, inference mode. */
function heldOut(model: tf.LayersModel, d: SeedData): { acc: number; loss: number } {
  const [loss, correct] = tf.tidy(() => {
    const probs = model.predict(d.xHeldOut, { batchSize: EVAL_BATCH }) as tf.Tensor2D;
    const labels = tf.tensor1d(d.heldOutLabels, 'int32');
    const y = tf.oneHot(labels, MNIST_CLASSES);
    const logP = tf.log(tf.clipByValue(probs, EPSILON, 1 - EPSILON));
    return [
      tf.sum(tf.neg(tf.mul(y, logP))).dataSync()[0],
      tf.sum(tf.cast(tf.equal(tf.argMax(probs, 1), labels), 'float32')).dataSync()[0],
    ];
  });
  return { acc: correct / d.nHeldOut, loss: loss / d.nHeldOut };
}

/** Index of a BN weight by name ('moving_variance', 'beta'), built-in or pack. */
function weightIndex(layer: tf.layers.Layer, name: string): number {
  const i = layer.weights.findIndex((w) => w.originalName.endsWith(name));
  if (i < 0) throw new Error(`small-batch: '${layer.name}' has no ${name} weight.`);
  return i;
}

/**
 * {@link BnMeasure} of every BN of `model` (see there). The BN weights are restored after the
 * training-mode calls, so the model is unchanged.
 */
export function measureBatchNorms(
  model: tf.LayersModel,
  d: SeedData,
  heldOutLabels: Int32Array,
  setting: Setting,
  batches: number,
  seed: number,
): BnMeasure[] {
  const bns = normLayers(model);
  if (bns.length === 0) return [];
  const gapBatches = batchIndices(
    heldOutLabels,
    setting.stream,
    setting.batchSize,
    batches,
    mixSeed(seed, SEED_PURPOSE.data),
  );
  return tf.tidy(() => {
    const inputs = inferenceInputs(model, bns, d.xHeldOut, EVAL_BATCH);
    return bns.map((bn, index) => {
      const input = inputs[index];
      const axes = Array.from({ length: input.rank - 1 }, (_, a) => a);
      const population = tf.moments(input, axes).variance.dataSync();
      const moving = bn.getWeights()[weightIndex(bn, 'moving_variance')].dataSync();
      const ratios = Array.from(moving)
        .map((v, c) => v / population[c])
        .filter((_, c) => population[c] > 1e-12);
      const beta = bn.getWeights()[weightIndex(bn, 'beta')];
      const gaps = gapBatches.map((idx) =>
        tf.tidy(() => {
          const x = tf.gather(input, tf.tensor1d(idx, 'int32'));
          const saved = bn.getWeights().map((w) => tf.clone(w));
          const inference = bn.apply(x) as tf.Tensor;
          const training = bn.apply(x, { training: true }) as tf.Tensor;
          bn.setWeights(saved);
          const diff = tf.norm(tf.sub(training, inference)).dataSync()[0];
          const scale = tf.norm(tf.sub(inference, beta)).dataSync()[0];
          return diff / Math.max(scale, 1e-12);
        }),
      );
      return {
        index,
        varianceRatio: ratios.reduce((s, r) => s + r, 0) / ratios.length,
        gap: gaps.reduce((s, g) => s + g, 0) / gaps.length,
      };
    });
  });
}

/** Trains configuration `config` in `setting` for seed `seed` and measures it. */
export async function runTask(
  cache: SeedCache,
  o: TaskOptions,
  seed: number,
  setting: Setting,
  config: NormKind,
  onStep: (status: string) => void = () => {},
): Promise<SmallBatchRun> {
  configById(config);
  const { data, trainLabels } = cache.get(seed);
  const { result, seconds, leaked } = await measuredRun(async () => {
    const model = buildModel(config, o, seed);
    const optimizer = tf.train.adam(o.learningRate);
    model.compile({ optimizer, loss: 'categoricalCrossentropy' });
    try {
      const batches = batchIndices(
        trainLabels,
        setting.stream,
        setting.batchSize,
        o.steps,
        mixSeed(seed, SEED_PURPOSE.epochOrder, setting.batchSize, setting.stream === 'iid' ? 0 : 1),
      );
      const losses: number[] = [];
      for (const [step, idx] of batches.entries()) {
        const [xb, yb] = tf.tidy(() => {
          const i = tf.tensor1d(idx, 'int32');
          return [tf.gather(data.xTrain, i), tf.gather(data.yTrain, i)];
        });
        const loss = (await model.trainOnBatch(xb, yb)) as number;
        tf.dispose([xb, yb]);
        losses.push(loss);
        if (step % 10 === 9) onStep(`step ${step + 1}/${o.steps}`);
      }
      const tail = losses.slice(-Math.max(1, Math.round(losses.length / 10)));
      const heldOutLabels = data.heldOutLabels;
      const measure = () =>
        measureBatchNorms(model, data, heldOutLabels, setting, o.gapBatches, seed);
      const eval0 = heldOut(model, data);
      const bn = measure();
      let recalibrated: SmallBatchRun['recalibrated'] = null;
      if (config === 'bn') {
        await recalibrateBatchNorm(model, data.xTrain, { batchSize: EVAL_BATCH });
        const e = heldOut(model, data);
        recalibrated = { heldOutAcc: e.acc, heldOutLoss: e.loss, bn: measure() };
      }
      return {
        setting: setting.id,
        config,
        seed,
        heldOutAcc: eval0.acc,
        heldOutLoss: eval0.loss,
        finalTrainLoss: tail.reduce((s, v) => s + v, 0) / tail.length,
        bn,
        recalibrated,
      };
    } finally {
      model.dispose();
      optimizer.dispose();
    }
  });
  return { ...result, seconds, leaked };
}
