/**
 * Population statistics for BatchNorm (Ioffe & Szegedy 2015, arXiv:1502.03167, Algorithm 2):
 * replace the moving averages, which lag behind training and weight recent batches, by the exact
 * mean and variance over a data set.
 */
import * as tf from '@tensorflow/tfjs';
import {
  DropnormValueError,
  checkOptionKeys,
  describeLayer,
  invalidArgument,
  optionSpec,
} from '../errors';
import { VarianceCorrection, reductionAxes } from '../ops/batch_norm';
import {
  batchNormAxis,
  batchNormWeightIndices,
  isBatchNormLayer,
  varianceCorrectionOf,
} from './batch_norm_layers';
import { GraphNode, assertLayersModel, modelGraph } from './rewrite';

/** What {@link recalibrateBatchNorm} reads: inputs of the model, all samples along axis 0. */
export type RecalibrationData = tf.Tensor | tf.Tensor[] | tf.data.Dataset<tf.TensorContainer>;

/** Options of {@link recalibrateBatchNorm}. */
export interface RecalibrateOptions {
  /** Samples per forward pass for tensor data (default 32). A Dataset is used as batched. */
  batchSize?: number;
}

// The keys of RecalibrateOptions: add a new option here too (tsc checks the two agree).
const RECALIBRATE_OPTIONS = optionSpec<RecalibrateOptions>({ batchSize: 'number' });

const OWNER = 'recalibrateBatchNorm';
const NOTHING_CHANGED = 'No weight of the model was changed.';

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

/** The names of the model's inputs (`model.inputNames` is empty for a Sequential). */
function inputNames(model: tf.LayersModel): string[] {
  return model.inputs.map((t) => t.sourceLayer.name);
}

/** The model inputs of one Dataset element: a list in `model.inputs` order. */
function inputsOf(model: tf.LayersModel, element: unknown): tf.Tensor[] {
  if (element instanceof tf.Tensor) return [element];
  if (Array.isArray(element) && element.every((t) => t instanceof tf.Tensor)) return element;
  if (element != null && typeof element === 'object' && !Array.isArray(element)) {
    const dict = element as Record<string, unknown>;
    if ('xs' in dict) return inputsOf(model, dict.xs);
    const tensors = inputNames(model).map((n) => dict[n]);
    if (tensors.every((t) => t instanceof tf.Tensor)) return tensors as tf.Tensor[];
  }
  const received =
    element != null && typeof element === 'object' && !Array.isArray(element)
      ? `an object with keys ${JSON.stringify(Object.keys(element))}`
      : Array.isArray(element)
        ? 'an array holding something other than tensors'
        : typeof element;
  throw invalidArgument(
    OWNER,
    'each Dataset element',
    received,
    `to be a tensor, an array of tensors, {xs, ys}, or a map of the input names ${JSON.stringify(inputNames(model))}`,
  );
}

/**
 * Throws unless `inputs` fit the model's inputs: one tensor per input, each of the input's rank
 * with its defined dimensions, all with the same number of samples (axis 0). A Dataset element
 * one axis short is an unbatched dataset, and the message says to call `.batch(n)`.
 * @param where e.g. 'data' or 'Dataset element 3', for the message.
 */
function checkInputShapes(
  model: tf.LayersModel,
  inputs: tf.Tensor[],
  where: string,
  fromDataset: boolean,
): void {
  if (inputs.length !== model.inputs.length) {
    throw invalidArgument(
      OWNER,
      `number of input tensors in ${where}`,
      inputs.length,
      `to equal the model's ${model.inputs.length} inputs ${JSON.stringify(inputNames(model))}`,
    );
  }
  inputs.forEach((t, i) => {
    const expected = model.inputs[i].shape;
    const fits = (shape: readonly number[], dims: readonly (number | null)[]) =>
      shape.length === dims.length && dims.every((d, a) => d == null || d === shape[a]);
    if (fits(t.shape, expected)) return;
    const name = inputNames(model)[i];
    const shapes = `The model's input '${name}' takes ${JSON.stringify(expected)}.`;
    if (fits(t.shape, expected.slice(1))) {
      throw invalidArgument(
        OWNER,
        `shape of input '${name}' in ${where}`,
        t.shape,
        'to have a batch axis first',
        fromDataset
          ? `${shapes} The dataset is not batched: call .batch(n) on it, e.g. dataset.batch(32).`
          : `${shapes} For a single sample add the batch axis: x.expandDims(0).`,
      );
    }
    throw invalidArgument(
      OWNER,
      `shape of input '${name}' in ${where}`,
      t.shape,
      `to match the model's input shape ${JSON.stringify(expected)} (null: any size)`,
      `${shapes} Pass the data the model was built for.`,
    );
  });
  const counts = inputs.map((t) => t.shape[0]);
  if (counts.some((n) => n !== counts[0])) {
    throw invalidArgument(
      OWNER,
      `sample counts (axis 0) of the inputs in ${where}`,
      counts,
      'to be equal',
    );
  }
}

// Relative difference of two passes' fingerprints above which the data differs: float32 sums of
// the same samples in another order (a reshuffled dataset) differ by ~1e-7 relative.
const FINGERPRINT_TOLERANCE = 1e-4;

/**
 * A cheap, order-independent fingerprint of a batch, computed on the device: per input, the sum
 * over the samples of x and of x² at every position (only the totals when the input has free
 * dimensions, whose size may change from batch to batch). Summed over a pass, it is the same for
 * the same samples in any order (a reshuffled dataset) and differs for other values.
 */
function batchFingerprint(model: tf.LayersModel, inputs: tf.Tensor[]): tf.Tensor1D {
  return tf.tidy(() =>
    tf.concat(
      inputs.map((t, i) => {
        const fixed = model.inputs[i].shape.slice(1).every((d) => d != null);
        const x = tf.cast(t, 'float32');
        const axes = fixed ? [0] : undefined;
        return tf.concat([
          tf.reshape(tf.sum(x, axes), [-1]),
          tf.reshape(tf.sum(tf.square(x), axes), [-1]),
        ]);
      }),
    ),
  ) as tf.Tensor1D;
}

/** One pass's per-batch results, read once at its end (asynchronously). */
export interface PassResult {
  /** Samples in the pass. */
  samples: number;
  /**
   * max |f − f₁| / max |f₁| of this pass's fingerprint f against the first pass's f₁ (0 on the
   * first pass), a scalar on the device; the caller reads and disposes it.
   */
  difference: tf.Scalar;
}

/**
 * The data, read once per BatchNorm: each pass yields the model inputs batch by batch and checks
 * that the data is there (a Dataset can be empty, exhausted, or iterable only once) and the same
 * size on every pass; a fingerprint of each pass (see {@link batchFingerprint}) lets the caller
 * check that a later pass yields the same values, without a read per batch.
 */
class DataPasses {
  private pass = 0;
  private firstSamples = 0;
  private firstFingerprint: tf.Tensor1D | null = null;

  constructor(
    private readonly model: tf.LayersModel,
    private readonly data: RecalibrationData,
    private readonly batchSize: number,
    private readonly passes: number,
  ) {}

  /** One pass; `visit` gets each batch (owned by the pass) and its index. */
  async forEachBatch(visit: (inputs: tf.Tensor[], batch: number) => void): Promise<PassResult> {
    this.pass++;
    let fingerprint: tf.Tensor1D | null = null;
    const add = (inputs: tf.Tensor[]) => {
      // Same length every batch: inputs are checked against the model's shape first.
      const f = batchFingerprint(this.model, inputs);
      const next = (fingerprint ? tf.add(fingerprint, f) : f) as tf.Tensor1D;
      if (fingerprint) tf.dispose([fingerprint, f]);
      fingerprint = next;
    };
    try {
      const samples = await this.run(visit, add);
      this.checkSize(samples);
      return { samples, difference: this.compare(fingerprint) };
    } finally {
      if (fingerprint !== this.firstFingerprint) tf.dispose(fingerprint ?? []);
    }
  }

  /** Releases the first pass's fingerprint. */
  dispose(): void {
    tf.dispose(this.firstFingerprint ?? []);
    this.firstFingerprint = null;
  }

  /** The relative difference of `fingerprint` from the first pass's (a new scalar). */
  private compare(fingerprint: tf.Tensor1D | null): tf.Scalar {
    if (this.pass === 1 || this.firstFingerprint == null) {
      this.firstFingerprint = fingerprint;
      return tf.scalar(0);
    }
    const first = this.firstFingerprint;
    if (fingerprint == null || fingerprint.shape[0] !== first.shape[0]) return tf.scalar(Infinity);
    return tf.tidy(() =>
      tf.div(tf.max(tf.abs(tf.sub(fingerprint, first))), tf.maximum(tf.max(tf.abs(first)), 1e-30)),
    ) as tf.Scalar;
  }

  private async run(
    visit: (inputs: tf.Tensor[], batch: number) => void,
    fingerprint: (inputs: tf.Tensor[]) => void,
  ): Promise<number> {
    let samples = 0;
    let batch = 0;
    if (this.data instanceof tf.data.Dataset) {
      const iterator = await this.data.iterator();
      for (let r = await iterator.next(); !r.done; r = await iterator.next()) {
        try {
          const inputs = inputsOf(this.model, r.value);
          checkInputShapes(this.model, inputs, `Dataset element ${batch}`, true);
          visit(inputs, batch);
          fingerprint(inputs);
          samples += inputs[0].shape[0];
          batch++;
        } finally {
          tf.dispose(r.value);
        }
      }
    } else {
      const tensors = Array.isArray(this.data) ? this.data : [this.data];
      const n = tensors[0].shape[0];
      for (let start = 0; start < n; start += this.batchSize, batch++) {
        const size = Math.min(this.batchSize, n - start);
        const inputs = tensors.map((t) => tf.slice(t, start, size));
        try {
          visit(inputs, batch);
          fingerprint(inputs);
        } finally {
          tf.dispose(inputs);
        }
        samples += size;
      }
    }
    return samples;
  }

  /** The error for a later pass whose fingerprint differs from the first's by `difference`. */
  differentData(difference: number): DropnormValueError {
    return new DropnormValueError(
      `${OWNER}: the dataset yielded ${this.firstSamples} samples on every pass, but other ` +
        `values on pass ${this.pass} (their sums differ from the first pass's by ` +
        `${difference.toPrecision(3)} relative): it must yield the same data at every pass. ` +
        `The data is read once per BatchNorm (${this.passes} passes here); random augmentation ` +
        'or a generator drawing new samples gives every BN other statistics. Pass the samples ' +
        'themselves (tensors, or tf.data.array(samples).batch(32)), or a generator that ' +
        `replays the same samples (shuffling them is fine). ${NOTHING_CHANGED}`,
    );
  }

  private checkSize(samples: number): void {
    if (this.pass === 1) {
      if (samples === 0) {
        throw new DropnormValueError(
          `${OWNER}: the dataset yielded no samples: it is empty, or exhausted (an iterator ` +
            'that was already read to its end). Pass a dataset that yields the data, e.g. ' +
            'tf.data.array(samples).batch(32), or a tf.data.generator whose function creates a ' +
            `new generator at each call. ${NOTHING_CHANGED}`,
        );
      }
      this.firstSamples = samples;
      return;
    }
    if (samples === this.firstSamples) return;
    const why =
      samples === 0
        ? 'it can be iterated only once (e.g. tf.data.generator(() => g) over one generator ' +
          'object g) or it was exhausted'
        : 'it must yield the same data at every pass';
    throw new DropnormValueError(
      `${OWNER}: the dataset yielded ${this.firstSamples} samples on its first pass and ` +
        `${samples} on pass ${this.pass}: ${why}. The data is read once per BatchNorm ` +
        `(${this.passes} passes here), so that each BN sees the statistics recalibrated before ` +
        'it. Pass a fresh dataset that can be iterated again: tf.data.generator(() => ' +
        'makeGenerator()) whose function creates a new generator at each call, ' +
        `tf.data.array(samples).batch(32), or the tensors themselves. ${NOTHING_CHANGED}`,
    );
  }
}

function containsBatchNorm(model: tf.LayersModel): boolean {
  return model.layers.some(
    (l) => isBatchNormLayer(l) || (l instanceof tf.LayersModel && containsBatchNorm(l)),
  );
}

function validateData(model: tf.LayersModel, data: unknown): void {
  if (data instanceof tf.data.Dataset) return;
  const tensors = Array.isArray(data) ? data : [data];
  if (tensors.length === 0 || !tensors.every((t) => t instanceof tf.Tensor)) {
    throw invalidArgument(
      OWNER,
      'data',
      Array.isArray(data) ? `an array of ${tensors.length} non-tensors` : typeof data,
      'to be a tf.Tensor, an array of tf.Tensor (one per model input) or a tf.data.Dataset',
    );
  }
  const list = tensors as tf.Tensor[];
  checkInputShapes(model, list, 'data', false);
  if (list[0].shape[0] === 0) {
    throw invalidArgument(
      OWNER,
      'data',
      `0 samples (shape ${JSON.stringify(list[0].shape)})`,
      'to hold at least one sample',
      'Pass the samples the population statistics should come from.',
    );
  }
}

/** The moving statistics of one BN: its two LayerVariables and copies of their values. */
interface SavedStatistics {
  mean: tf.LayerVariable;
  variance: tf.LayerVariable;
  savedMean: tf.Tensor;
  savedVariance: tf.Tensor;
}

function saveStatistics(layer: tf.layers.Layer): SavedStatistics {
  const idx = batchNormWeightIndices(layer);
  const mean = layer.weights[idx.movingMean];
  const variance = layer.weights[idx.movingVariance];
  // tf.clone shares the buffer: a copy costs nothing until the variable is overwritten.
  return {
    mean,
    variance,
    savedMean: tf.clone(mean.read()),
    savedVariance: tf.clone(variance.read()),
  };
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
 * over `data` per BN (a Dataset must therefore be re-iterable and yield the same data each time).
 *
 * **Mutates `model`**: like `fit`, this is a statistics update; only the two moving statistics of
 * each BN change (γ, β and the pack's `num_batches_tracked` are kept). Copy the model first
 * (e.g. with `convertToDropnorm` or save/load) to keep the old statistics.
 *
 * **All or nothing**: either every BN gets its new statistics, or the call throws and every weight
 * of the model is bit-identical to before. Each BN is written as soon as its statistics are
 * computed (the next one needs them), and the previous statistics of every BN (2 × channels
 * floats each) are written back on any failure; so do not predict with the model while the
 * promise is pending. Each failure names its cause: empty data, a Dataset that is exhausted, can
 * be iterated only once, or yields different data on a later pass (the fix: a fresh dataset), an
 * unbatched Dataset (the fix: `.batch(n)`), inputs of the wrong shape, NaN/Infinity in the data,
 * or a non-finite input of a BN (a layer before it overflows).
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
  const owner = OWNER;
  assertLayersModel(owner, model);
  checkOptionKeys(owner, options, RECALIBRATE_OPTIONS);
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
        `calls of ${describeLayer(node.layer)}`,
        'more than one',
        'to be one (a shared BN has no single population)',
      );
    }
    seen.add(node.layer);
  }

  // Each BN must see the recalibrated statistics upstream, so each is written as soon as it is
  // computed; every BN's previous statistics are kept (O(channels) each) and written back if
  // anything fails, so a failure leaves the model as it was, bit for bit.
  const saved = bnNodes.map((node) => saveStatistics(node.layer));
  const passes = new DataPasses(model, data, batchSize, bnNodes.length);
  try {
    const results: RecalibratedBatchNorm[] = [];
    for (const [k, node] of bnNodes.entries()) {
      results.push(await recalibrateOne(node, model, passes, saved[k]));
    }
    return results;
  } catch (e) {
    for (const s of saved) {
      s.mean.write(s.savedMean);
      s.variance.write(s.savedVariance);
    }
    throw e;
  } finally {
    passes.dispose();
    tf.dispose(saved.flatMap((s) => [s.savedMean, s.savedVariance]));
  }
}

/** Computes one BN's population statistics over a pass of the data and writes them. */
async function recalibrateOne(
  node: GraphNode,
  model: tf.LayersModel,
  passes: DataPasses,
  stats: SavedStatistics,
): Promise<RecalibratedBatchNorm> {
  const layer = node.layer;
  const bn = describeLayer(layer);
  const input = node.inputs[0];
  const rank = input.shape.length;
  const axis = batchNormAxis(layer, rank);
  const axes = reductionAxes(rank, axis);
  const channels = input.shape[axis] as number;
  // A view of the model from its inputs to this BN's input: it shares the model's layers.
  const features = tf.model({ inputs: model.inputs, outputs: input });
  // Per-batch moments stay on the device; one asynchronous read per pass brings them (and the
  // pass's data check) to the CPU, where they are pooled in float64. No synchronous read.
  const perBatch: { mean: tf.Tensor; m2: tf.Tensor; finite: tf.Tensor; count: number }[] = [];
  let pass: PassResult | undefined;
  let read: [Float32Array, Float32Array, Uint8Array | Int32Array | Float32Array, number];
  try {
    pass = await passes.forEachBatch((inputs) => {
      perBatch.push(
        tf.tidy(() => {
          const x = features.predictOnBatch(inputs.length === 1 ? inputs[0] : inputs) as tf.Tensor;
          const mu = tf.mean(x, axes, true);
          return {
            mean: tf.reshape(mu, [-1]),
            m2: tf.reshape(tf.sum(tf.squaredDifference(x, mu), axes), [-1]),
            // Whether the data of this batch is finite: names the cause if the moments are not.
            finite: tf.stack(inputs.map((t) => tf.all(tf.isFinite(t)))).all(),
            count: axes.reduce((m, a) => m * x.shape[a], 1),
          };
        }),
      );
    });
    const stacked = tf.tidy(() => [
      tf.stack(perBatch.map((b) => b.mean)),
      tf.stack(perBatch.map((b) => b.m2)),
      tf.stack(perBatch.map((b) => b.finite)),
    ]);
    try {
      const [means, m2s, finite, difference] = await Promise.all([
        ...stacked.map((t) => t.data()),
        pass.difference.data(),
      ]);
      read = [means as Float32Array, m2s as Float32Array, finite, difference[0]];
    } finally {
      tf.dispose(stacked);
    }
  } finally {
    tf.dispose(perBatch.flatMap((b) => [b.mean, b.m2, b.finite]));
    if (pass) pass.difference.dispose();
  }
  const [means, m2s, finite, difference] = read;
  const pooled = new PooledMoments(channels);
  for (const [batch, { count }] of perBatch.entries()) {
    const meanValues = means.subarray(batch * channels, (batch + 1) * channels);
    const m2Values = m2s.subarray(batch * channels, (batch + 1) * channels);
    const bad = meanValues.findIndex(
      (v, c) => !Number.isFinite(v) || !Number.isFinite(m2Values[c]),
    );
    if (bad >= 0) {
      const cause = finite[batch]
        ? `the statistics of ${bn} are not finite in channel ${bad} (batch ${batch}) although ` +
          'the data is: the values reaching it overflow float32 (a layer before it blows up, ' +
          'or its weights hold NaN/Infinity). Check the model, or recalibrate with data scaled ' +
          'as in training.'
        : `the data holds NaN or Infinity (in batch ${batch}), so the statistics of ${bn} would ` +
          'not be finite. Remove or impute the non-finite samples.';
      throw new DropnormValueError(`${OWNER}: ${cause} ${NOTHING_CHANGED}`);
    }
    pooled.add(count, meanValues, m2Values);
  }
  // NaN (a fingerprint that overflowed float32) cannot be compared: only the size check holds.
  if (difference > FINGERPRINT_TOLERANCE) throw passes.differentData(difference);

  const correction = varianceCorrectionOf(layer);
  const m = pooled.count;
  if (correction === 'unbiased' && m < 2) {
    throw invalidArgument(
      OWNER,
      `elements per channel for ${bn}`,
      m,
      "to be at least 2 under varianceCorrection 'unbiased' (m/(m−1) is undefined for m = 1)",
      `Pass at least 2 samples. ${NOTHING_CHANGED}`,
    );
  }
  const divisor = correction === 'unbiased' ? m - 1 : m;
  const mean = Float32Array.from(pooled.mean);
  const variance = Float32Array.from(pooled.m2, (v) => v / divisor);
  const overflow = mean.findIndex((v, c) => !Number.isFinite(v) || !Number.isFinite(variance[c]));
  if (overflow >= 0) {
    throw new DropnormValueError(
      `${OWNER}: the population mean or variance of ${bn} in channel ${overflow} exceeds the ` +
        `float32 range (mean ${pooled.mean[overflow]}, variance ${pooled.m2[overflow] / divisor}): ` +
        `the values reaching it are too large. ${NOTHING_CHANGED}`,
    );
  }
  const newMean = tf.tensor1d(mean);
  const newVariance = tf.tensor1d(variance);
  stats.mean.write(newMean);
  stats.variance.write(newVariance);
  tf.dispose([newMean, newVariance]);
  return { name: layer.name, count: m, varianceCorrection: correction };
}
