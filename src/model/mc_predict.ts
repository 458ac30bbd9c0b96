/**
 * Monte-Carlo dropout (Gal & Ghahramani 2016, "Dropout as a Bayesian Approximation: Representing
 * Model Uncertainty in Deep Learning", arXiv:1506.02142): T stochastic forward passes with dropout
 * on give samples of the predictive distribution; their mean is the prediction and their variance
 * an uncertainty estimate.
 */
import * as tf from '@tensorflow/tfjs';
import { DropnormValueError, checkOptionKeys, invalidArgument, optionKeys } from '../errors';
import { StochasticLayer } from '../layers/stochastic';
import { SeedStream, mixSeed } from '../random';

/** The tfjs built-in dropout layers, which mcPredict cannot switch on. */
const BUILTIN_DROPOUT_CLASSES: readonly string[] = [
  'Dropout',
  'SpatialDropout1D',
  'GaussianDropout',
  'AlphaDropout',
];

/** Options of {@link mcPredict}. */
export interface McPredictOptions {
  /** Number T of stochastic forward passes (default 30). */
  samples?: number;
  /**
   * Seed of the whole prediction: each of the model's dropout layers gets its own stream derived
   * from it (the layers' own streams are restored afterwards), so equal seeds give equal results.
   * Omitted: every layer continues its own sequence (fresh randomness when it has no seed).
   */
  seed?: number;
  /** Batch size of each `model.predict` pass (default 32, as `predict`). */
  batchSize?: number;
}

/** The Monte-Carlo estimate: per-output-element mean and variance over the T passes. */
export interface McPrediction {
  /** (1/T) Σ ŷ_t. */
  mean: tf.Tensor;
  /** (1/T) Σ (ŷ_t − mean)², the sample variance of the passes (divides by T, not T − 1). */
  variance: tf.Tensor;
}

/** Every layer of `model`, descending into nested models (a Sequential inside a functional model…). */
function allLayers(model: tf.LayersModel): tf.layers.Layer[] {
  const out: tf.layers.Layer[] = [];
  for (const layer of model.layers) {
    out.push(layer);
    if (layer instanceof tf.LayersModel) out.push(...allLayers(layer));
  }
  return out;
}

/**
 * Monte-Carlo prediction (Gal & Ghahramani 2016): runs `model.predict(x)` T = `samples` times with
 * the pack's dropout layers ({@link StochasticLayer}s: Dropout, SpatialDropout1D/2D/3D,
 * GaussianDropout, AlphaDropout, DropConnectDense, DropBlock2D, DropPath) drawing noise and every
 * other layer in inference mode (BatchNorm uses and keeps its moving statistics), and returns
 *
 *   mean = (1/T) Σ ŷ_t,   variance = (1/T) Σ (ŷ_t − mean)²
 *
 * accumulated with Welford's update (no E[ŷ²] − E[ŷ]² cancellation). The model is not modified:
 * the layers' switches and seed streams are restored even when a pass throws. A model whose only
 * dropout layers are tfjs built-ins is an error: those cannot be switched on without switching on
 * every layer (BatchNorm included). Built-in dropout layers next to the pack's stay inactive.
 *
 * @param model a single-output LayersModel (Sequential or functional).
 * @param x the model's input(s).
 */
export function mcPredict(
  model: tf.LayersModel,
  x: tf.Tensor | tf.Tensor[],
  options: McPredictOptions = {},
): McPrediction {
  const owner = 'mcPredict';
  checkOptionKeys(
    owner,
    options,
    optionKeys<McPredictOptions>({ samples: true, seed: true, batchSize: true }),
  );
  const samples = options.samples ?? 30;
  if (!(Number.isInteger(samples) && samples >= 1)) {
    throw invalidArgument(
      owner,
      'samples',
      options.samples,
      'to be a positive integer',
      'Use e.g. 30–100.',
    );
  }
  if (options.seed != null && !Number.isFinite(options.seed)) {
    throw invalidArgument(owner, 'seed', options.seed, 'to be a finite number or omitted');
  }
  if (model.outputs.length !== 1) {
    throw invalidArgument(
      owner,
      'number of model outputs',
      model.outputs.length,
      'to be 1',
      'Build a single-output model for each head, e.g. tf.model({inputs, outputs: head}).',
    );
  }
  const layers = allLayers(model);
  const ours = layers.filter((l): l is StochasticLayer => l instanceof StochasticLayer);
  if (ours.length === 0) {
    const builtins = layers.filter((l) => BUILTIN_DROPOUT_CLASSES.includes(l.getClassName()));
    if (builtins.length > 0) {
      const names = builtins.map((l) => `'${l.name}' (${l.getClassName()})`).join(', ');
      throw new DropnormValueError(
        `${owner}: the model's dropout layers are tfjs built-ins: ${names}. They cannot be ` +
          'switched on alone: model.apply(x, {training: true}) would also switch BatchNorm and ' +
          "every other layer to training mode. Build the model with the pack's layers " +
          '(layers.dropout, layers.spatialDropout1d, layers.gaussianDropout, layers.alphaDropout, ' +
          '…), or convert it with convertToDropnorm.',
      );
    }
    throw invalidArgument(
      owner,
      'dropout layers of tfjs-dropnorm in the model',
      'none',
      'to exist',
      'Without a stochastic layer every pass is the same; add e.g. layers.dropout({rate: 0.1}).',
    );
  }

  const saved = ours.map((layer) => ({
    layer,
    mcActive: layer.mcActive,
    stream: null as SeedStream | null,
  }));
  let mean: tf.Tensor | null = null;
  let m2: tf.Tensor | null = null;
  try {
    saved.forEach((s, i) => {
      s.layer.mcActive = true;
      if (options.seed != null)
        s.stream = s.layer.swapSeedStream(new SeedStream(mixSeed(options.seed, i)));
    });
    for (let t = 1; t <= samples; t++) {
      const y = model.predict(x, { batchSize: options.batchSize }) as tf.Tensor;
      const [nextMean, nextM2] = tf.tidy(() => {
        if (mean === null || m2 === null) return [tf.clone(y), tf.zerosLike(y)];
        // Welford: mean_t = mean + (y − mean)/t;  M2_t = M2 + (y − mean)(y − mean_t).
        const delta = tf.sub(y, mean);
        const updated = tf.add(mean, tf.div(delta, t));
        return [updated, tf.add(m2, tf.mul(delta, tf.sub(y, updated)))];
      });
      const inputs = Array.isArray(x) ? x : [x];
      if (!inputs.includes(y)) y.dispose();
      mean?.dispose();
      m2?.dispose();
      mean = nextMean;
      m2 = nextM2;
    }
  } catch (e) {
    mean?.dispose();
    m2?.dispose();
    throw e;
  } finally {
    for (const s of saved) {
      s.layer.mcActive = s.mcActive;
      if (s.stream) s.layer.swapSeedStream(s.stream);
    }
  }
  const finalM2 = m2 as unknown as tf.Tensor;
  const variance = tf.tidy(() => tf.div(finalM2, samples));
  finalM2.dispose();
  return { mean: mean as unknown as tf.Tensor, variance };
}
