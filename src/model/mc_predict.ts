/**
 * Monte-Carlo dropout (Gal & Ghahramani 2016, "Dropout as a Bayesian Approximation: Representing
 * Model Uncertainty in Deep Learning", arXiv:1506.02142): T stochastic forward passes with dropout
 * on give samples of the predictive distribution; their mean is the prediction and their spread
 * the uncertainty. For classifiers, the entropies and BALD's mutual information (see
 * `ops/uncertainty.ts`) split the uncertainty into its aleatoric and epistemic parts.
 *
 * One engine (a generator yielding after every forward pass) drives the synchronous
 * {@link mcPredict} and the asynchronous {@link mcPredictAsync}, so both give the same numbers.
 */
import * as tf from '@tensorflow/tfjs';
import { checkOptionKeys, invalidArgument, optionSpec } from '../errors';
import { StochasticLayer } from '../layers/stochastic';
import { ProbabilityKind, entropy, mutualInformationFromEntropies } from '../ops/uncertainty';
import { SeedStream, mixSeed } from '../random';
import { convertBuiltinsToDropnorm } from './convert';
import { checkNotDisposed, walkLayers } from '../layers/util';
import { assertLayersModel } from './rewrite';

/** The tfjs built-in dropout layers, converted to the pack's for a prediction. */
const BUILTIN_DROPOUT_CLASSES: readonly string[] = [
  'Dropout',
  'SpatialDropout1D',
  'GaussianDropout',
  'AlphaDropout',
];

/**
 * The largest `samples` {@link mcPredict} accepts: 10⁶. Beyond it the float32 running mean stops
 * registering new passes (each moves it by (ŷ_t − mean)/T, below a few float32 ulps), and the
 * Monte-Carlo error of the mean, σ/√T, is already 0.1% of one pass's spread σ.
 */
export const MAX_MC_SAMPLES = 1_000_000;

/** Progress of a Monte-Carlo prediction, given to `onProgress` after every forward pass. */
export interface McProgress {
  /** Samples (passes over the whole input) completed. */
  samplesDone: number;
  /** Samples requested. */
  samples: number;
  /** Forward passes completed: one per sample and input chunk of `batchSize` rows. */
  passesDone: number;
  /** Forward passes in all: samples × ⌈rows / batchSize⌉. */
  passes: number;
}

/** Options of {@link mcPredict} and {@link mcPredictAsync}. */
export interface McPredictOptions {
  /** Number T of stochastic forward passes (default 30; at most {@link MAX_MC_SAMPLES}). */
  samples?: number;
  /**
   * Seed of the whole prediction: the i-th stochastic layer draws from the stream of
   * `mixSeed(seed, i)` (the layers' own streams are left where they were), so equal seeds give
   * equal results. Omitted: every layer continues its own sequence (fresh randomness when unseeded).
   */
  seed?: number;
  /**
   * Rows of the input per forward pass (default 32, as `predict`). Memory is bounded by one forward
   * pass of this many rows plus the accumulators (two or three output-sized tensors), whatever
   * `samples` is.
   */
  batchSize?: number;
  /**
   * Also return every pass, stacked: `samples` of shape [T, …output shape] (default false). This
   * memory grows with T (T × the output size).
   */
  keepSamples?: boolean;
  /**
   * The outputs are class probabilities: `'categorical'` (softmax, classes on the last axis) or
   * `'binary'` (sigmoid, one probability per element). Adds `predictiveEntropy`, `expectedEntropy`
   * and `mutualInformation` to the result; applies to every output. Outputs outside [0, 1] (or
   * categorical rows not summing to 1) are an error.
   */
  probabilities?: ProbabilityKind;
  /**
   * Called after every forward pass. {@link mcPredictAsync} awaits a returned promise; throwing (or
   * rejecting) stops the prediction, with the model left as it was and nothing leaked.
   */
  onProgress?: (progress: McProgress) => void | Promise<void>;
}

/**
 * What a field of {@link McPrediction} holds for a model of unknown output count: one tensor for a
 * single-output model, an array (in `model.outputs` order) for several, as `model.predict`.
 */
export type McOutputs = tf.Tensor | tf.Tensor[];

/**
 * The Monte-Carlo estimate, per output element. Like `model.predict`, each field is a tensor for a
 * single-output model and an array (in `model.outputs` order) for several outputs. `mcPredict`
 * types it `McPrediction<tf.Tensor>` for a `tf.Sequential` (one output, always) and
 * `McPrediction<tf.Tensor | tf.Tensor[]>` for any other LayersModel; name the case you know,
 * `mcPredict<tf.Tensor>(…)` or `mcPredict<tf.Tensor[]>(…)`.
 */
export interface McPrediction<T extends McOutputs = tf.Tensor> {
  /** (1/T) Σ ŷ_t. */
  mean: T;
  /** (1/T) Σ (ŷ_t − mean)², the sample variance of the passes (divides by T, not T − 1). */
  variance: T;
  /** Every pass, stacked on a new first axis, `[T, …]` (with `keepSamples`). */
  samples?: T;
  /** H[mean] in nats (with `probabilities`): total uncertainty. */
  predictiveEntropy?: T;
  /** (1/T) Σ H[ŷ_t] in nats (with `probabilities`): aleatoric uncertainty. */
  expectedEntropy?: T;
  /** predictiveEntropy − expectedEntropy ≥ 0 (BALD, with `probabilities`): epistemic uncertainty. */
  mutualInformation?: T;
  /** Paths of the layers that drew noise (`'encoder/dropout_1'` inside a nested model). */
  stochasticLayers: string[];
}

// samples, seed, batchSize and probabilities have value checks of their own below.
const OPTION_KEYS = optionSpec<McPredictOptions>({
  samples: 'any',
  seed: 'any',
  batchSize: 'any',
  keepSamples: 'boolean',
  probabilities: 'any',
  onProgress: 'function',
});

/** Accumulators of one output over one input chunk. */
interface Accumulator {
  mean: tf.Tensor | null;
  m2: tf.Tensor | null;
  entropyMean: tf.Tensor | null;
  passes: tf.Tensor[];
}

interface Plan {
  model: tf.LayersModel;
  /** The layers that draw noise, with their paths. */
  active: { layer: StochasticLayer; path: string }[];
  /** A converted copy to dispose at the end (null when the user's model runs itself). */
  copy: tf.LayersModel | null;
}

function checkOptions(
  owner: string,
  options: McPredictOptions,
): Required<Pick<McPredictOptions, 'samples' | 'batchSize' | 'keepSamples'>> {
  checkOptionKeys(owner, options, OPTION_KEYS);
  const samples = options.samples ?? 30;
  if (typeof samples !== 'number' || !Number.isInteger(samples) || samples < 1) {
    throw invalidArgument(
      owner,
      'samples',
      options.samples,
      'to be a positive integer',
      'Use e.g. 30–100 passes; the Monte-Carlo error of the mean shrinks as 1/√samples.',
    );
  }
  if (samples > MAX_MC_SAMPLES) {
    throw invalidArgument(
      owner,
      'samples',
      options.samples,
      `to be at most ${MAX_MC_SAMPLES} (MAX_MC_SAMPLES)`,
      'Beyond it the float32 running mean no longer registers new passes, and the Monte-Carlo ' +
        'error is already 0.1% of one pass’s spread; 30–1000 passes are usual.',
    );
  }
  if (
    options.seed != null &&
    (typeof options.seed !== 'number' || !Number.isFinite(options.seed))
  ) {
    throw invalidArgument(owner, 'seed', options.seed, 'to be a finite number or omitted');
  }
  const batchSize = options.batchSize ?? 32;
  if (typeof batchSize !== 'number' || !Number.isInteger(batchSize) || batchSize < 1) {
    throw invalidArgument(owner, 'batchSize', options.batchSize, 'to be a positive integer');
  }
  const keepSamples = options.keepSamples ?? false;
  if (typeof keepSamples !== 'boolean') {
    throw invalidArgument(owner, 'keepSamples', options.keepSamples, 'to be true or false');
  }
  const kind = options.probabilities;
  if (kind != null && kind !== 'categorical' && kind !== 'binary') {
    throw invalidArgument(
      owner,
      'probabilities',
      kind,
      "to be 'categorical', 'binary' or omitted",
      "'categorical' for a softmax output, 'binary' for a sigmoid output; omit it for regression.",
    );
  }
  if (options.onProgress != null && typeof options.onProgress !== 'function') {
    throw invalidArgument(owner, 'onProgress', typeof options.onProgress, 'to be a function');
  }
  return { samples, batchSize, keepSamples };
}

/** The inputs as an array, checked against the model's inputs; returns them and the row count. */
function checkInputs(
  owner: string,
  model: tf.LayersModel,
  x: tf.Tensor | tf.Tensor[],
): { inputs: tf.Tensor[]; rows: number } {
  const inputs = Array.isArray(x) ? x : [x];
  if (inputs.length !== model.inputs.length || inputs.some((t) => !(t instanceof tf.Tensor))) {
    throw invalidArgument(
      owner,
      'x',
      Array.isArray(x) ? `an array of ${x.length}` : typeof x,
      model.inputs.length === 1
        ? 'to be one tensor (the model has one input)'
        : `to be an array of ${model.inputs.length} tensors, one per model input`,
    );
  }
  inputs.forEach((t, i) => {
    const expected = model.inputs[i].shape;
    const fits =
      t.rank === expected.length &&
      expected.every((d, k) => k === 0 || d == null || d === t.shape[k]);
    if (!fits) {
      throw invalidArgument(
        owner,
        `the shape of input ${i} ('${model.inputs[i].name}')`,
        t.shape,
        `to match the model input ${JSON.stringify(expected)}`,
      );
    }
  });
  const rows = inputs[0].shape[0];
  if (rows < 1 || inputs.some((t) => t.shape[0] !== rows)) {
    throw invalidArgument(
      owner,
      'the batch sizes of the inputs',
      inputs.map((t) => t.shape[0]),
      'to be equal and at least 1',
    );
  }
  return { inputs, rows };
}

/** The layer's current seed stream (swapped out and back in). */
function seedStreamOf(layer: StochasticLayer): SeedStream {
  const stream = layer.swapSeedStream(new SeedStream());
  layer.swapSeedStream(stream);
  return stream;
}

/**
 * Which layers draw noise, and on which model: the layers flagged `mcDropout` when there are any
 * (then `mcPredict` gives the distribution of repeated `model.predict`); otherwise every dropout
 * layer, the built-in ones converted to the pack's on a copy (the user's model is untouched).
 */
function plan(owner: string, model: tf.LayersModel): Plan {
  const layers = walkLayers(model);
  const pack = layers.filter(
    (l): l is { layer: StochasticLayer; path: string } => l.layer instanceof StochasticLayer,
  );
  const flagged = pack.filter((l) => l.layer.mcDropout);
  if (flagged.length > 0) return { model, active: flagged, copy: null };
  const builtins = layers.filter((l) => BUILTIN_DROPOUT_CLASSES.includes(l.layer.getClassName()));
  if (builtins.length === 0) {
    if (pack.length === 0) {
      throw invalidArgument(
        owner,
        'dropout layers in the model',
        'none',
        `to exist (the pack's or tfjs's: ${BUILTIN_DROPOUT_CLASSES.join(', ')})`,
        'Without a stochastic layer every pass is the same; add e.g. layers.dropout({rate: 0.1}) before the last layer and retrain.',
      );
    }
    return { model, active: pack, copy: null };
  }
  const copy = convertBuiltinsToDropnorm(owner, model, {}, 'dropout').model;
  // The copy's pack layers continue the original pack layers' seed sequences, as they would
  // without the copy.
  const byPath = new Map(pack.map((l) => [l.path, l.layer]));
  const active = walkLayers(copy).filter(
    (l): l is { layer: StochasticLayer; path: string } => l.layer instanceof StochasticLayer,
  );
  for (const { layer, path } of active) {
    const original = byPath.get(path);
    if (original) layer.swapSeedStream(seedStreamOf(original));
  }
  return { model: copy, active, copy };
}

/**
 * A tensor the engine needs the values of: the synchronous driver reads it with `dataSync`, the
 * asynchronous one awaits `data()`, and each passes the values back into the engine.
 */
class ReadRequest {
  constructor(readonly tensor: tf.Tensor) {}
}

/** What the engine yields: a progress promise (or nothing), or a tensor to read. */
type EngineStep = void | Promise<void> | ReadRequest;

/**
 * [min, max, worst |row sum − 1|] of `y` as one tensor (the last 0 for 'binary'): the numbers
 * {@link checkProbabilities} needs, read back in one go.
 */
function probabilityStatistics(y: tf.Tensor, kind: ProbabilityKind): tf.Tensor {
  return tf.tidy(() => {
    const sums = kind === 'categorical' ? tf.max(tf.abs(tf.sub(tf.sum(y, -1), 1))) : tf.scalar(0);
    return tf.stack([tf.min(y), tf.max(y), sums]);
  });
}

/** Throws unless the statistics of {@link probabilityStatistics} describe probabilities of `kind`. */
function checkProbabilities(
  owner: string,
  model: tf.LayersModel,
  statistics: ArrayLike<number>,
  kind: ProbabilityKind,
  output: number,
): void {
  const [min, max, worstSum] = Array.from(statistics);
  if (min >= -1e-6 && max <= 1 + 1e-6 && worstSum <= 1e-3) return;
  const what =
    kind === 'categorical'
      ? 'values in [0, 1] summing to 1 along the last axis'
      : 'values in [0, 1]';
  const sums = kind === 'categorical' ? `, a row sum off 1 by ${worstSum}` : '';
  throw invalidArgument(
    owner,
    'probabilities',
    kind,
    `to describe output ${output} ('${model.outputs[output].name}')`,
    `That output ranges over [${min}, ${max}]${sums}; ${kind} probabilities are ${what}. End the ` +
      "model with a softmax ('categorical') or a sigmoid ('binary'), or omit probabilities for a " +
      'regression output.',
  );
}

/** Welford's update of one output chunk with the t-th pass y (t counted from 1). */
function welford(acc: Accumulator, y: tf.Tensor, t: number, kind: ProbabilityKind | undefined) {
  const { mean, m2, entropyMean } = acc;
  const next = tf.tidy((): tf.Tensor[] => {
    const h = kind ? [entropy(y, kind)] : [];
    if (mean === null || m2 === null) return [tf.clone(y), tf.zerosLike(y), ...h];
    // mean_t = mean + (y − mean)/t;  M2_t = M2 + (y − mean)(y − mean_t): no E[y²] − E[y]²
    // cancellation. The mean entropy takes the same running-mean update.
    const delta = tf.sub(y, mean);
    const updated = tf.add(mean, tf.div(delta, t));
    const m2Next = tf.add(m2, tf.mul(delta, tf.sub(y, updated)));
    if (h.length === 0 || entropyMean === null) return [updated, m2Next];
    return [updated, m2Next, tf.add(entropyMean, tf.div(tf.sub(h[0], entropyMean), t))];
  });
  tf.dispose([mean, m2, entropyMean].filter((v): v is tf.Tensor => v !== null));
  acc.mean = next[0];
  acc.m2 = next[1];
  acc.entropyMean = next[2] ?? null;
}

/** Concatenates the chunks of one output along the batch axis (disposing them). */
function joinChunks(parts: tf.Tensor[], axis = 0): tf.Tensor {
  if (parts.length === 1) return parts[0];
  const joined = tf.concat(parts, axis);
  tf.dispose(parts);
  return joined;
}

/**
 * The engine: yields after every forward pass (with `onProgress`'s return value) and returns the
 * result. The layers are switched on only during each pass, so between passes (when the async form
 * yields) the user's model is exactly as it was.
 */
function* run(
  owner: string,
  model: tf.LayersModel,
  x: tf.Tensor | tf.Tensor[],
  options: McPredictOptions,
): Generator<EngineStep, McPrediction<McOutputs>, ArrayLike<number> | undefined> {
  options = options ?? {};
  const { samples, batchSize, keepSamples } = checkOptions(owner, options);
  assertLayersModel(owner, model);
  const { inputs, rows } = checkInputs(owner, model, x);
  const kind = options.probabilities;
  const setup = plan(owner, model);
  const streams =
    options.seed == null
      ? null
      : setup.active.map((_, i) => new SeedStream(mixSeed(options.seed as number, i)));
  const starts: number[] = [];
  for (let s = 0; s < rows; s += batchSize) starts.push(s);
  const nOutputs = setup.model.outputs.length;
  const acc: Accumulator[][] = starts.map(() =>
    Array.from({ length: nOutputs }, () => ({
      mean: null,
      m2: null,
      entropyMean: null,
      passes: [],
    })),
  );
  const disposeAll = () => {
    for (const chunk of acc) {
      for (const a of chunk) {
        tf.dispose([a.mean, a.m2, a.entropyMean, ...a.passes].filter((v): v is tf.Tensor => !!v));
      }
    }
  };

  const forward = (chunk: tf.Tensor[]): tf.Tensor[] => {
    const saved = setup.active.map(({ layer }, i) => {
      const state = { mcActive: layer.mcActive, stream: null as SeedStream | null };
      layer.mcActive = true;
      if (streams) state.stream = layer.swapSeedStream(streams[i]);
      return state;
    });
    try {
      const out = setup.model.apply(chunk.length === 1 ? chunk[0] : chunk, { training: false });
      return Array.isArray(out) ? (out as tf.Tensor[]) : [out as tf.Tensor];
    } finally {
      setup.active.forEach(({ layer }, i) => {
        layer.mcActive = saved[i].mcActive;
        if (saved[i].stream) layer.swapSeedStream(saved[i].stream as SeedStream);
      });
    }
  };

  try {
    const passes = samples * starts.length;
    let passesDone = 0;
    for (let t = 1; t <= samples; t++) {
      for (let c = 0; c < starts.length; c++) {
        const size = Math.min(batchSize, rows - starts[c]);
        checkNotDisposed(owner, 'x', inputs); // mcPredictAsync: the caller may dispose x meanwhile
        const ys = tf.tidy(() => {
          const chunk =
            starts.length === 1 ? inputs : inputs.map((v) => tf.slice(v, starts[c], size));
          return forward(chunk);
        });
        try {
          for (let o = 0; o < ys.length; o++) {
            if (kind && t === 1) {
              const statistics = probabilityStatistics(ys[o], kind);
              let values: ArrayLike<number> | undefined;
              try {
                values = yield new ReadRequest(statistics);
              } finally {
                statistics.dispose();
              }
              checkProbabilities(owner, setup.model, values as ArrayLike<number>, kind, o);
            }
            welford(acc[c][o], ys[o], t, kind);
          }
        } finally {
          ys.forEach((y, o) => {
            // A model may return its input as an output: never dispose (or keep) the user's tensor.
            const own = inputs.includes(y) ? null : y;
            if (keepSamples) acc[c][o].passes.push(own ?? tf.clone(y));
            else own?.dispose();
          });
        }
        passesDone++;
        yield options.onProgress?.({
          samplesDone: c === starts.length - 1 ? t : t - 1,
          samples,
          passesDone,
          passes,
        });
      }
    }
  } catch (e) {
    disposeAll();
    throw e;
  } finally {
    setup.copy?.dispose();
  }

  const field = (pick: (a: Accumulator) => tf.Tensor, axis = 0) =>
    Array.from({ length: nOutputs }, (_, o) =>
      joinChunks(
        acc.map((chunk) => pick(chunk[o])),
        axis,
      ),
    );
  const mean = field((a) => a.mean as tf.Tensor);
  const variance = field((a) => {
    const v = tf.div(a.m2 as tf.Tensor, samples);
    (a.m2 as tf.Tensor).dispose();
    return v;
  });
  const result: McPrediction<tf.Tensor[]> = {
    mean,
    variance,
    stochasticLayers: setup.active.map((l) => l.path),
  };
  if (keepSamples) {
    // Each chunk stacks to [T, rows_c, …]; the chunks join on the batch axis, 1.
    result.samples = field((a) => {
      const stacked = tf.stack(a.passes);
      tf.dispose(a.passes);
      return stacked;
    }, 1);
  }
  if (kind) {
    const expected = field((a) => a.entropyMean as tf.Tensor);
    const predictive = mean.map((m) => entropy(m, kind));
    result.predictiveEntropy = predictive;
    result.expectedEntropy = expected;
    result.mutualInformation = predictive.map((p, o) =>
      mutualInformationFromEntropies(p, expected[o]),
    );
  }
  if (nOutputs > 1) return result;
  const single = (v: tf.Tensor[] | undefined) => (v ? v[0] : undefined);
  const one: McPrediction<tf.Tensor> = {
    mean: mean[0],
    variance: variance[0],
    stochasticLayers: result.stochasticLayers,
  };
  if (result.samples) one.samples = single(result.samples);
  if (result.predictiveEntropy) {
    one.predictiveEntropy = single(result.predictiveEntropy);
    one.expectedEntropy = single(result.expectedEntropy);
    one.mutualInformation = single(result.mutualInformation);
  }
  return one;
}

/** Lets timers, I/O and rendering run: setImmediate in Node, a message-channel task in browsers. */
function yieldToEventLoop(): Promise<void> {
  if (typeof setImmediate === 'function') return new Promise((resolve) => setImmediate(resolve));
  if (typeof MessageChannel === 'function') {
    return new Promise((resolve) => {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => {
        channel.port1.close();
        resolve();
      };
      channel.port2.postMessage(null);
    });
  }
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Monte-Carlo prediction (Gal & Ghahramani 2016): T = `samples` forward passes of `model` on `x`
 * with dropout drawing noise and **every other layer in inference mode** (BatchNorm uses and keeps
 * its moving statistics), summarized per output element as
 *
 *   mean = (1/T) Σ ŷ_t,   variance = (1/T) Σ (ŷ_t − mean)²
 *
 * accumulated with Welford's update (no E[ŷ²] − E[ŷ]² cancellation), and for classifiers
 * (`probabilities`) the predictive entropy H[mean], the expected entropy (1/T) Σ H[ŷ_t] and their
 * difference, the mutual information of BALD (Houlsby et al. 2011; Gal et al. 2017).
 *
 * Which layers draw noise:
 * - the layers with `mcDropout: true`, when the model has any: the result is then the distribution
 *   of repeated `model.predict` calls;
 * - otherwise every dropout layer: the pack's ({@link StochasticLayer}s), and tfjs's built-in
 *   Dropout, SpatialDropout1D, GaussianDropout and AlphaDropout, which run as the pack's
 *   counterparts on a converted copy (built-ins cannot be switched on without switching on
 *   BatchNorm too; the built-in AlphaDropout's wrong noise becomes the correct one).
 *
 * Nested models, several inputs (`x` an array) and several outputs (each field an array, as
 * `model.predict`) work. The input is processed in chunks of `batchSize` rows: memory is one
 * forward pass of a chunk plus two or three output-sized accumulators, whatever `samples` is (plus
 * T passes with `keepSamples`). The model is not modified: the switches and seed streams are set
 * for each pass and restored after it, even when it throws.
 *
 * With `probabilities`, the check that the outputs are probabilities reads three numbers per output
 * and input chunk back from the backend on the first pass (a synchronous read, which stalls webgl
 * and webgpu); {@link mcPredictAsync} reads them with an awaited `data()`.
 *
 * Typed by the model: a `tf.Sequential` has one output, so each field is a `tf.Tensor`; any other
 * LayersModel gives `tf.Tensor | tf.Tensor[]` unless you name the case, `mcPredict<tf.Tensor[]>(…)`.
 *
 * @param model any LayersModel (Sequential or functional).
 * @param x the model's input(s), with the batch on the first axis.
 * @throws DropnormValueError for a model without dropout layers (also inside nested models and
 *   `timeDistributed` wrappers), a disposed model, inputs that do not fit the model, `samples` not
 *   an integer in [1, {@link MAX_MC_SAMPLES}], or outputs that are not the `probabilities` they are
 *   said to be.
 */
export function mcPredict(
  model: tf.Sequential,
  x: tf.Tensor | tf.Tensor[],
  options?: McPredictOptions,
): McPrediction<tf.Tensor>;
export function mcPredict<T extends McOutputs = McOutputs>(
  model: tf.LayersModel,
  x: tf.Tensor | tf.Tensor[],
  options?: McPredictOptions,
): McPrediction<T>;
export function mcPredict(
  model: tf.LayersModel,
  x: tf.Tensor | tf.Tensor[],
  options: McPredictOptions = {},
): McPrediction<McOutputs> {
  const engine = run('mcPredict', model, x, options);
  let step = engine.next();
  while (!step.done) {
    const request = step.value;
    step = engine.next(request instanceof ReadRequest ? request.tensor.dataSync() : undefined);
  }
  return step.value;
}

/**
 * {@link mcPredict} that yields to the event loop after every forward pass (timers, I/O and
 * rendering run during a long prediction) and awaits `onProgress`. Same options, same result: with
 * the same seed it returns exactly what {@link mcPredict} returns. It reads nothing back
 * synchronously (the `probabilities` check awaits `data()`). Typed as {@link mcPredict}.
 */
export function mcPredictAsync(
  model: tf.Sequential,
  x: tf.Tensor | tf.Tensor[],
  options?: McPredictOptions,
): Promise<McPrediction<tf.Tensor>>;
export function mcPredictAsync<T extends McOutputs = McOutputs>(
  model: tf.LayersModel,
  x: tf.Tensor | tf.Tensor[],
  options?: McPredictOptions,
): Promise<McPrediction<T>>;
export async function mcPredictAsync(
  model: tf.LayersModel,
  x: tf.Tensor | tf.Tensor[],
  options: McPredictOptions = {},
): Promise<McPrediction<McOutputs>> {
  const engine = run('mcPredictAsync', model, x, options);
  let step = engine.next();
  while (!step.done) {
    let values: tf.TypedArray | undefined;
    try {
      const request = step.value;
      if (request instanceof ReadRequest) {
        values = await request.tensor.data();
      } else {
        await request;
        await yieldToEventLoop();
      }
    } catch (e) {
      // Runs the engine's cleanup (disposes the accumulators, restores nothing left switched).
      step = engine.throw(e);
      continue;
    }
    step = engine.next(values);
  }
  return step.value;
}
