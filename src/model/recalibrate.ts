/**
 * Population statistics for BatchNorm (Ioffe & Szegedy 2015, arXiv:1502.03167, Algorithm 2):
 * replace the moving averages, which lag behind training and weight recent batches, by the exact
 * mean and variance over a data set.
 */
import * as tf from '@tensorflow/tfjs';
import { invalidArgument } from '../errors';
import { VarianceCorrection, reductionAxes } from '../ops/batch_norm';
import {
  batchNormAxis,
  batchNormWeightIndices,
  isBatchNormLayer,
  varianceCorrectionOf,
} from './batch_norm_layers';
import { assertLayersModel, modelGraph } from './rewrite';

/** What {@link recalibrateBatchNorm} reads: inputs of the model, all samples along axis 0. */
export type RecalibrationData = tf.Tensor | tf.Tensor[] | tf.data.Dataset<tf.TensorContainer>;

/** Options of {@link recalibrateBatchNorm}. */
export interface RecalibrateOptions {
  /** Samples per forward pass for tensor data (default 32). A Dataset is used as batched. */
  batchSize?: number;
}

/** One recalibrated BatchNorm. */
export interface RecalibratedBatchNorm {
  /** Layer name. */
  name: string;
  /** m: elements per channel the statistics were computed over (samples × spatial size). */
  count: number;
  varianceCorrection: VarianceCorrection;
}

/** Exact running moments per channel, pooled over batches (Chan et al. 1979). */
class PooledMoments {
  count = 0;
  readonly mean: Float64Array;
  readonly m2: Float64Array;

  constructor(channels: number) {
    this.mean = new Float64Array(channels);
    this.m2 = new Float64Array(channels);
  }

  /**
   * Adds a batch of n elements per channel with mean μ_b and M2_b = Σ(x−μ_b)²:
   * δ = μ_b − μ, μ ← μ + δ·n/N, M2 ← M2 + M2_b + δ²·n·n_old/N, N = n_old + n.
   */
  add(n: number, mean: ArrayLike<number>, m2: ArrayLike<number>): void {
    const total = this.count + n;
    for (let c = 0; c < this.mean.length; c++) {
      const delta = mean[c] - this.mean[c];
      this.mean[c] += (delta * n) / total;
      this.m2[c] += m2[c] + (delta * delta * n * this.count) / total;
    }
    this.count = total;
  }
}

/** The model inputs of one batch: a list in `model.inputs` order. */
function inputsOf(model: tf.LayersModel, element: tf.TensorContainer): tf.Tensor[] {
  if (element instanceof tf.Tensor) return [element];
  if (Array.isArray(element)) return element as tf.Tensor[];
  const dict = element as Record<string, tf.TensorContainer>;
  if (dict != null && typeof dict === 'object' && 'xs' in dict) return inputsOf(model, dict.xs);
  if (dict != null && typeof dict === 'object' && model.inputNames.every((n) => n in dict)) {
    return model.inputNames.map((n) => dict[n] as tf.Tensor);
  }
  throw invalidArgument(
    'recalibrateBatchNorm',
    'each Dataset element',
    Object.keys(dict ?? {}),
    `to be a tensor, an array of tensors, {xs, ys}, or a map of the input names ${JSON.stringify(model.inputNames)}`,
  );
}

async function forEachBatch(
  model: tf.LayersModel,
  data: RecalibrationData,
  batchSize: number,
  visit: (inputs: tf.Tensor[]) => void,
): Promise<void> {
  if (data instanceof tf.data.Dataset) {
    const iterator = await data.iterator();
    for (let r = await iterator.next(); !r.done; r = await iterator.next()) {
      visit(inputsOf(model, r.value));
      tf.dispose(r.value);
    }
    return;
  }
  const tensors = Array.isArray(data) ? data : [data];
  const n = tensors[0].shape[0];
  for (let start = 0; start < n; start += batchSize) {
    const size = Math.min(batchSize, n - start);
    const batch = tensors.map((t) => tf.slice(t, start, size));
    visit(batch);
    tf.dispose(batch);
  }
}

function containsBatchNorm(model: tf.LayersModel): boolean {
  return model.layers.some(
    (l) => isBatchNormLayer(l) || (l instanceof tf.LayersModel && containsBatchNorm(l)),
  );
}

function validateData(model: tf.LayersModel, data: unknown): void {
  const owner = 'recalibrateBatchNorm';
  if (data instanceof tf.data.Dataset) return;
  const tensors = Array.isArray(data) ? data : [data];
  if (!tensors.every((t) => t instanceof tf.Tensor)) {
    throw invalidArgument(
      owner,
      'data',
      typeof data,
      'to be a tf.Tensor, an array of tf.Tensor (one per model input) or a tf.data.Dataset',
    );
  }
  const list = tensors as tf.Tensor[];
  if (list.length !== model.inputs.length) {
    throw invalidArgument(
      owner,
      'number of input tensors',
      list.length,
      `to equal the model's ${model.inputs.length} inputs`,
    );
  }
  const n = list[0].shape[0];
  if (!(n > 0) || list.some((t) => t.shape[0] !== n)) {
    throw invalidArgument(
      owner,
      'sample counts (axis 0) of data',
      list.map((t) => t.shape[0]),
      'to be equal and at least 1',
    );
  }
}

/**
 * Recomputes every BatchNorm's `moving_mean` and `moving_variance` of `model` as exact population
 * statistics over `data`: for each channel, over all m elements of all samples,
 *
 *   μ = (1/m)·Σ x,   σ² = (1/(m−1))·Σ (x−μ)²  ('unbiased')  or  (1/m)·Σ (x−μ)²  ('biased'),
 *
 * with each BN's own varianceCorrection (the built-in's is 'biased'). The sums are pooled exactly
 * over batches with Chan's parallel formula in float64, so the result does not depend on
 * `batchSize`. Every other layer runs in inference mode (Dropout off), and BNs are processed in
 * topological order, so each sees the already recalibrated statistics upstream. One forward pass
 * over `data` per BN (a Dataset must therefore be re-iterable).
 *
 * **Mutates `model`**: like `fit`, this is a statistics update; only the two moving statistics of
 * each BN change (γ, β and the pack's `num_batches_tracked` are kept). Copy the model first
 * (e.g. with `convertToDropnorm` or save/load) to keep the old statistics.
 *
 * @param data the model's inputs: a tensor, an array of tensors (multi-input, in `model.inputs`
 *   order), or a batched tf.data.Dataset of tensors, arrays, `{xs, ys}` or maps by input name.
 * @returns the recalibrated BNs in the order processed.
 */
export async function recalibrateBatchNorm(
  model: tf.LayersModel,
  data: RecalibrationData,
  options: RecalibrateOptions = {},
): Promise<RecalibratedBatchNorm[]> {
  const owner = 'recalibrateBatchNorm';
  assertLayersModel(owner, model);
  const batchSize = options.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw invalidArgument(owner, 'options.batchSize', batchSize, 'to be an integer ≥ 1');
  }
  validateData(model, data);

  const graph = modelGraph(model);
  for (const node of graph.nodes) {
    if (node.layer instanceof tf.LayersModel && containsBatchNorm(node.layer)) {
      throw invalidArgument(
        owner,
        'every BatchNorm',
        `a BatchNorm inside the nested model '${node.layer.name}'`,
        'to be a layer of the model itself, not of a model used as a layer',
        "Rebuild the model flat (apply the nested model's layers directly) to recalibrate it.",
      );
    }
  }
  const bnNodes = graph.nodes.filter((n) => isBatchNormLayer(n.layer));
  const seen = new Set<tf.layers.Layer>();
  for (const node of bnNodes) {
    if (seen.has(node.layer)) {
      throw invalidArgument(
        owner,
        `calls of BatchNorm layer '${node.layer.name}'`,
        'more than one',
        'to be one (a shared BN has no single population)',
      );
    }
    seen.add(node.layer);
  }

  const results: RecalibratedBatchNorm[] = [];
  for (const node of bnNodes) {
    const layer = node.layer;
    const input = node.inputs[0];
    const rank = input.shape.length;
    const axis = batchNormAxis(layer, rank);
    const axes = reductionAxes(rank, axis);
    const channels = input.shape[axis] as number;
    // A view of the model from its inputs to this BN's input: it shares the model's layers.
    const features = tf.model({ inputs: model.inputs, outputs: input });
    const pooled = new PooledMoments(channels);
    await forEachBatch(model, data, batchSize, (inputs) => {
      const [mean, m2, n] = tf.tidy(() => {
        const x = features.predictOnBatch(inputs.length === 1 ? inputs[0] : inputs) as tf.Tensor;
        const mu = tf.mean(x, axes, true);
        const count = axes.reduce((m, a) => m * x.shape[a], 1);
        return [
          tf.reshape(mu, [-1]),
          tf.reshape(tf.sum(tf.squaredDifference(x, mu), axes), [-1]),
          count,
        ] as const;
      });
      pooled.add(n, mean.dataSync(), m2.dataSync());
      tf.dispose([mean, m2]);
    });

    const correction = varianceCorrectionOf(layer);
    const m = pooled.count;
    if (correction === 'unbiased' && m < 2) {
      throw invalidArgument(
        owner,
        `elements per channel for BatchNorm '${layer.name}'`,
        m,
        "to be at least 2 under varianceCorrection 'unbiased'",
      );
    }
    const divisor = correction === 'unbiased' ? m - 1 : m;
    const variance = Float32Array.from(pooled.m2, (v) => v / divisor);
    const idx = batchNormWeightIndices(layer);
    const weights = layer.getWeights().slice();
    const newMean = tf.tensor1d(Float32Array.from(pooled.mean));
    const newVariance = tf.tensor1d(variance);
    weights[idx.movingMean] = newMean;
    weights[idx.movingVariance] = newVariance;
    layer.setWeights(weights);
    tf.dispose([newMean, newVariance]);
    results.push({ name: layer.name, count: m, varianceCorrection: correction });
  }
  return results;
}
