/**
 * Export, quantize and save in one call: the model `exportForInference` makes (BatchNorm folded,
 * training-only layers gone, tfjs built-in classes only), its weights stored in one of the formats
 * `tf.loadLayersModel` dequantizes on load (tensorflowjs_converter's `--quantize_float16`,
 * `--quantize_uint16`, `--quantize_uint8`), written through any `tf.io` save handler.
 *
 * Per-tensor uint8 suffers after folding: folding multiplies each output channel of a kernel by its
 * own γ/σ, so one grid of 256 levels spans channels of very different ranges. For 'uint8' three
 * remedies from Nagel et al. 2019 ("Data-Free Quantization through Weight Equalization and Bias
 * Correction") and from mixed-precision practice run before quantizing:
 * 1. cross-layer equalization (Sec. 3, `equalize.ts`), exact in float;
 * 2. per-weight precision: the weights whose uint8 error costs most per byte (depthwise kernels,
 *    biases: few bytes, wide per-channel spread) stay 2-byte within a byte budget;
 * 3. bias correction (Sec. 4.2, empirical form): the mean output error E[(Ŵ − W)·x] of each uint8
 *    kernel, measured on the `calibration` inputs, is subtracted from the layer's bias.
 */
import * as tf from '@tensorflow/tfjs';
import { checkOptionKeys, invalidArgument, optionKeys } from '../errors';
import type { SkippedLayer } from './convert';
import { EqualizedPair, SkippedPair, equalizeWeights } from './equalize';
import { RemovedLayer, ReplacedLayer, exportForInference } from './export';
import type { FoldedBatchNorm } from './fold_batch_norm';
import {
  BYTES_PER_VALUE,
  EncodedWeight,
  FLOAT16_MAX,
  QUANTIZE_DTYPES,
  QuantizeDtype,
  WeightDtype,
  encodeWeight,
  weightError,
} from './quantize';
import { assertLayersModel } from './rewrite';

const OWNER = 'saveForInference';

/** Options of {@link saveForInference}. */
export interface SaveForInferenceOptions {
  /**
   * Storage format of every float32 weight: 'float16' (IEEE half), 'uint16' or 'uint8' (per-tensor
   * affine, min/scale, as tensorflowjs_converter). Default: none (float32).
   */
  quantize?: QuantizeDtype;
  /**
   * Representative model inputs (a batch; one tensor per model input). With them, 'uint8' measures
   * each layer's output error to choose precision and correct biases, and the report gives the
   * output error of the saved model against the float export on them. Not disposed.
   */
  calibration?: tf.Tensor | tf.Tensor[];
  /** 'uint8' only: cross-layer equalization before quantizing (default true). */
  equalize?: boolean;
  /** 'uint8' only: empirical bias correction, needs `calibration` (default: true when given). */
  biasCorrection?: boolean;
  /**
   * 'uint8' only: 'mixed' (default) keeps the weights whose uint8 error costs most per byte in a
   * 2-byte format within `maxBytesRatio`; 'uniform' stores every weight as uint8.
   */
  precision?: 'mixed' | 'uniform';
  /** Byte budget of 'mixed', as a fraction of the float32 bytes: ≥ 0.25, default 0.3. */
  maxBytesRatio?: number;
  /**
   * Error budget of 'mixed': a weight whose measured relative error at uint8 is at most this stays
   * uint8 even when the byte budget allows more (default 0: spend the byte budget).
   */
  maxWeightError?: number;
  /** Calibration inputs per forward pass (default 4): bounds memory on large models. */
  batchSize?: number;
  /** Passed to `exportForInference` (default true). */
  fuseActivations?: boolean;
}

const OPTION_KEYS = optionKeys<SaveForInferenceOptions>({
  quantize: true,
  calibration: true,
  equalize: true,
  biasCorrection: true,
  precision: true,
  maxBytesRatio: true,
  maxWeightError: true,
  batchSize: true,
  fuseActivations: true,
});

/** One saved weight: its storage format, what that costs, and why it was chosen. */
export interface SavedWeight {
  /** The weight's name in the manifest (e.g. 'conv1/kernel'). */
  name: string;
  /** The layer holding it. */
  layer: string;
  shape: number[];
  /** The storage format ('float32' when not quantized; int32 weights are stored as they are). */
  dtype: WeightDtype | 'int32';
  bytes: number;
  /**
   * ‖ŵ − w‖₂/‖w‖₂ of what tfjs decodes against the float weight saved (after equalization and bias
   * correction, which change the float weights without changing the model).
   */
  relativeError: number;
  /** max |ŵ − w|. */
  maxAbsError: number;
  /**
   * 'uint8' with calibration: the relative error ‖Δy‖/‖y‖ its layer's pre-activation output would
   * have with this weight at uint8 (after bias correction for kernels), the measure precision used.
   */
  layerError?: number;
  /** Why this format. */
  reason: string;
}

/** A layer whose bias absorbed the mean output error of its uint8 kernel (where significant). */
export interface CorrectedBias {
  layer: string;
  /** Output channels corrected: those whose mean error is at least twice its standard error. */
  channels: number;
  /** Output channels of the layer. */
  of: number;
  /** Relative error of the layer's pre-activation output on the calibration inputs, before. */
  errorBefore: number;
  /** The same after subtracting the mean error from the bias. */
  errorAfter: number;
}

/** The saved model's outputs against the float export's on the calibration inputs. */
export interface OutputError {
  samples: number;
  /** ‖ŷ − y‖₂/‖y‖₂ over all outputs. */
  relative: number;
  /** max |ŷ − y|. */
  maxAbs: number;
  /** Mean total-variation distance ½Σ|p̂ − p| per sample (single output of probabilities only). */
  totalVariation?: number;
  /** Fraction of samples whose argmax agrees (single rank-2 output with ≥ 2 columns only). */
  top1Agreement?: number;
}

/** Result of {@link saveForInference}. */
export interface SaveForInferenceResult {
  /** BatchNorms folded by the export. */
  folded: FoldedBatchNorm[];
  /** Layers the export left out. */
  removed: RemovedLayer[];
  /** Layers the export replaced by built-ins. */
  replaced: ReplacedLayer[];
  /** Layers the export kept as they were, with the reason. */
  skipped: SkippedLayer[];
  /**
   * Pack layers with no built-in equivalent that the export keeps (per-sample normalizations:
   * GroupNorm, InstanceNorm, RMSNorm), with the reason; their weights are quantized like any other.
   * When not empty, the saved model loads only where the pack is imported (its classes registered).
   */
  kept: SkippedLayer[];
  /** The `quantize` option ('float32' without it). */
  quantize: WeightDtype;
  /** Every saved weight, in manifest order. */
  weights: SavedWeight[];
  /** Pairs of layers equalized ('uint8'). */
  equalized: EqualizedPair[];
  /** Linear layers whose output could not be equalized, with the reason ('uint8'). */
  notEqualized: SkippedPair[];
  /** Biases corrected ('uint8' with calibration). */
  biasCorrected: CorrectedBias[];
  /** Bytes of the saved weights. */
  bytes: number;
  /** Bytes the same weights take as float32. */
  float32Bytes: number;
  /** bytes / float32Bytes. */
  ratio: number;
  /** Output error on the calibration inputs (only with `calibration`). */
  calibration?: OutputError;
  /** What the save handler returned. */
  saved: tf.io.SaveResult;
}

/** The one save handler `destination` names, or an error saying why there is none. */
function saveHandler(destination: unknown): tf.io.IOHandler {
  if (typeof destination === 'string') {
    const handlers = tf.io.getSaveHandlers(destination);
    if (handlers.length === 1) return handlers[0];
    throw invalidArgument(
      OWNER,
      'destination',
      destination,
      handlers.length === 0
        ? 'to be a URL a tf.io save router handles'
        : 'to be a URL exactly one tf.io save router handles',
      "tfjs routes 'indexeddb://', 'localstorage://' and 'downloads://' in browsers; in Node import 'tfjs-dropnorm/node' for 'file://' (or pass fileSystem(dir)), or pass any tf.io.IOHandler.",
    );
  }
  if (
    destination != null &&
    typeof destination === 'object' &&
    typeof (destination as tf.io.IOHandler).save === 'function'
  ) {
    return destination as tf.io.IOHandler;
  }
  throw invalidArgument(
    OWNER,
    'destination',
    destination,
    'to be a tf.io.IOHandler with a save method or a URL string',
    "E.g. 'indexeddb://my-model', tf.io.withSaveHandler(fn), or in Node 'file://dir' after importing 'tfjs-dropnorm/node'.",
  );
}

/** The calibration inputs as a list, checked against the model's inputs. */
function calibrationInputs(model: tf.LayersModel, calibration: unknown): tf.Tensor[] | null {
  if (calibration == null) return null;
  const list = Array.isArray(calibration) ? calibration : [calibration];
  if (list.length !== model.inputs.length || !list.every((t) => t instanceof tf.Tensor)) {
    throw invalidArgument(
      OWNER,
      'options.calibration',
      Array.isArray(calibration) ? `an array of ${list.length}` : typeof calibration,
      `to be ${model.inputs.length === 1 ? 'a tf.Tensor' : `an array of ${model.inputs.length} tf.Tensors`} (one per model input)`,
    );
  }
  const tensors = list as tf.Tensor[];
  const batch = tensors[0].shape[0];
  tensors.forEach((t, i) => {
    const expected = model.inputs[i].shape;
    const fits =
      t.rank === expected.length &&
      t.shape.every((d, k) => expected[k] == null || expected[k] === d) &&
      t.shape[0] === batch &&
      (batch ?? 0) > 0;
    if (!fits) {
      throw invalidArgument(
        OWNER,
        `options.calibration${model.inputs.length > 1 ? `[${i}]` : ''}.shape`,
        t.shape,
        `to fit the model input '${model.inputs[i].name}' of shape [${expected.map((d) => d ?? 'null').join(', ')}], with the same batch size ≥ 1 for every input`,
        'Pass a batch of real inputs, preprocessed as for predict.',
      );
    }
  });
  return tensors;
}

interface CheckedOptions {
  quantize: WeightDtype;
  calibration: tf.Tensor[] | null;
  equalize: boolean;
  biasCorrection: boolean;
  precision: 'mixed' | 'uniform';
  maxBytesRatio: number;
  maxWeightError: number;
  batchSize: number;
  fuseActivations: boolean;
}

function checkOptions(model: tf.LayersModel, options: SaveForInferenceOptions): CheckedOptions {
  checkOptionKeys(OWNER, options, OPTION_KEYS);
  const o = options ?? {};
  const quantize = o.quantize ?? 'float32';
  if (quantize !== 'float32' && !QUANTIZE_DTYPES.includes(quantize)) {
    throw invalidArgument(
      OWNER,
      'options.quantize',
      o.quantize,
      `to be one of ${QUANTIZE_DTYPES.map((d) => `'${d}'`).join(', ')}`,
      'Leave it out to save float32 weights.',
    );
  }
  const uint8Only = ['equalize', 'biasCorrection', 'precision', 'maxBytesRatio', 'maxWeightError'];
  if (quantize !== 'uint8') {
    const given = uint8Only.find((k) => (o as Record<string, unknown>)[k] !== undefined);
    if (given) {
      throw invalidArgument(
        OWNER,
        `options.${given}`,
        (o as Record<string, unknown>)[given],
        `to be given only with quantize: 'uint8'`,
        `It tunes uint8 quantization; quantize is ${JSON.stringify(o.quantize ?? null)}.`,
      );
    }
  }
  const bool = (key: 'equalize' | 'biasCorrection' | 'fuseActivations', fallback: boolean) => {
    const v = o[key] ?? fallback;
    if (typeof v !== 'boolean')
      throw invalidArgument(OWNER, `options.${key}`, v, 'to be a boolean');
    return v;
  };
  const calibration = calibrationInputs(model, o.calibration);
  const biasCorrection = bool('biasCorrection', calibration != null);
  if (biasCorrection && calibration == null) {
    throw invalidArgument(
      OWNER,
      'options.biasCorrection',
      true,
      'to come with options.calibration',
      'Bias correction subtracts the mean output error measured on calibration inputs; pass some, or leave biasCorrection out.',
    );
  }
  const precision = o.precision ?? 'mixed';
  if (precision !== 'mixed' && precision !== 'uniform') {
    throw invalidArgument(OWNER, 'options.precision', precision, "to be 'mixed' or 'uniform'");
  }
  const maxBytesRatio = o.maxBytesRatio ?? 0.3;
  if (typeof maxBytesRatio !== 'number' || !(maxBytesRatio >= 0.25 && maxBytesRatio <= 1)) {
    throw invalidArgument(
      OWNER,
      'options.maxBytesRatio',
      maxBytesRatio,
      'to be a number in [0.25, 1]',
      'uint8 stores 1 byte for the 4 of float32: 0.25 is every weight at uint8.',
    );
  }
  const maxWeightError = o.maxWeightError ?? 0;
  if (typeof maxWeightError !== 'number' || !(maxWeightError >= 0)) {
    throw invalidArgument(OWNER, 'options.maxWeightError', maxWeightError, 'to be a number ≥ 0');
  }
  const batchSize = o.batchSize ?? 4;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw invalidArgument(OWNER, 'options.batchSize', batchSize, 'to be an integer ≥ 1');
  }
  return {
    quantize,
    calibration,
    equalize: bool('equalize', true),
    biasCorrection,
    precision,
    maxBytesRatio,
    maxWeightError,
    batchSize,
    fuseActivations: bool('fuseActivations', true),
  };
}

/** The artifacts `model.save` would write, without writing them. */
async function artifactsOf(model: tf.LayersModel): Promise<tf.io.ModelArtifacts> {
  let captured: tf.io.ModelArtifacts | null = null;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      captured = artifacts;
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
  return captured!;
}

/** The values of each weight spec: a Float32Array for float32 weights, the raw bytes otherwise. */
function splitWeights(artifacts: tf.io.ModelArtifacts): Array<Float32Array | Uint8Array> {
  const data = tf.io.CompositeArrayBuffer.join(artifacts.weightData!);
  let offset = 0;
  return artifacts.weightSpecs!.map((spec) => {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const bytes = n * 4; // the export holds float32 and int32 weights only
    const slice = data.slice(offset, offset + bytes);
    offset += bytes;
    return spec.dtype === 'float32' ? new Float32Array(slice) : new Uint8Array(slice);
  });
}

/** Artifacts with the given weights: float32 ones as Float32Array, encoded ones as their bytes. */
function withWeights(
  artifacts: tf.io.ModelArtifacts,
  weights: ReadonlyArray<Float32Array | Uint8Array | EncodedWeight>,
  convertedBy: string | null = null,
): tf.io.ModelArtifacts {
  const specs: tf.io.WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  artifacts.weightSpecs!.forEach((spec, k) => {
    const w = weights[k];
    const entry: tf.io.WeightsManifestEntry = {
      name: spec.name,
      shape: spec.shape,
      dtype: spec.dtype,
    };
    if (w instanceof Float32Array || w instanceof Uint8Array) {
      parts.push(new Uint8Array(w.buffer, w.byteOffset, w.byteLength));
    } else {
      if (w.quantization) entry.quantization = { ...w.quantization };
      parts.push(w.bytes);
    }
    specs.push(entry);
  });
  const total = parts.reduce((s, p) => s + p.byteLength, 0);
  const data = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    data.set(p, offset);
    offset += p.byteLength;
  }
  return {
    modelTopology: artifacts.modelTopology,
    format: artifacts.format,
    generatedBy: artifacts.generatedBy,
    convertedBy,
    weightSpecs: specs,
    weightData: data.buffer,
  };
}

/** Layers whose output error the calibration pass measures. */
const MEASURED = new Set(['Dense', 'Conv1D', 'Conv2D', 'DepthwiseConv2D']);

/** A measured layer: its weight indices and how to apply a kernel to its input. */
interface Probe {
  layer: tf.layers.Layer;
  kernel: number;
  bias: number | null;
  apply: (x: tf.Tensor, kernel: tf.Tensor) => tf.Tensor;
}

function probeOf(
  layer: tf.layers.Layer,
  index: ReadonlyMap<tf.LayerVariable, number>,
): Probe | null {
  const className = layer.getClassName();
  if (!MEASURED.has(className) || layer.inboundNodes.length !== 1) return null;
  const c = layer.getConfig();
  if (c.dataFormat === 'channelsFirst') return null;
  const kernel = index.get(layer.weights[0]);
  if (kernel === undefined) return null;
  const bias = c.useBias === false ? null : (index.get(layer.weights[1]) ?? null);
  const pair = (v: unknown): [number, number] =>
    Array.isArray(v) ? [Number(v[0]), Number(v[1] ?? v[0])] : [Number(v ?? 1), Number(v ?? 1)];
  const padding = c.padding as 'valid' | 'same';
  // Causal Conv1D padding has no tf.conv1d equivalent: such a layer keeps the weight-error measure.
  if (className !== 'Dense' && padding !== 'valid' && padding !== 'same') return null;
  let apply: Probe['apply'];
  if (className === 'Dense') {
    apply = (x, k) => {
      const flat = tf.reshape(x, [-1, k.shape[0]]);
      return tf.matMul(flat, k as tf.Tensor2D);
    };
  } else if (className === 'Conv1D') {
    apply = (x, k) =>
      tf.conv1d(
        x as tf.Tensor3D,
        k as tf.Tensor3D,
        pair(c.strides)[0],
        padding,
        'NWC',
        pair(c.dilationRate)[0],
      );
  } else {
    // Conv2D or DepthwiseConv2D: the same arguments.
    const conv = className === 'Conv2D' ? tf.conv2d : tf.depthwiseConv2d;
    apply = (x, k) =>
      conv(
        x as tf.Tensor4D,
        k as tf.Tensor4D,
        pair(c.strides),
        padding,
        'NHWC',
        pair(c.dilationRate),
      );
  }
  return { layer, kernel, bias, apply };
}

/** Sums over the calibration inputs of one measured layer. */
interface LayerStats {
  /** Σ e per output channel, e = apply(x, Ŵ − W) with Ŵ at uint8. */
  sumE: Float64Array;
  /** Σ over samples of the squared per-sample mean of e per channel (for its standard error). */
  sumSampleMean2: Float64Array;
  /** Calibration samples seen. */
  samples: number;
  /** Σ e². */
  sumE2: number;
  /** Σ y², y = apply(x, W) + b. */
  sumY2: number;
  /** Output positions per channel. */
  count: number;
}

/** One pass over the calibration inputs collecting {@link LayerStats} of every probe. */
async function measureLayers(
  artifacts: tf.io.ModelArtifacts,
  floats: ReadonlyArray<Float32Array | Uint8Array>,
  uint8: ReadonlyMap<number, EncodedWeight>,
  calibration: tf.Tensor[],
  batchSize: number,
): Promise<Map<Probe, LayerStats>> {
  const model = await tf.loadLayersModel(tf.io.fromMemory(withWeights(artifacts, floats)));
  const index = new Map(model.weights.map((w, k) => [w, k] as const));
  const probes = model.layers.map((l) => probeOf(l, index)).filter((p): p is Probe => p != null);
  const stats = new Map<Probe, LayerStats>();
  const constants: tf.Tensor[] = [];
  let probeModel: tf.LayersModel | null = null;
  try {
    const outputs = [...new Set(probes.map((p) => p.layer.input as tf.SymbolicTensor))];
    probeModel = tf.model({ inputs: model.inputs, outputs });
    const kernels = probes.map((p) => {
      const shape = model.weights[p.kernel].shape as number[];
      const w = tf.tensor(floats[p.kernel] as Float32Array, shape);
      const delta = tf.tidy(() => tf.sub(tf.tensor(uint8.get(p.kernel)!.decoded, shape), w));
      const b = p.bias === null ? null : tf.tensor(floats[p.bias] as Float32Array);
      constants.push(w, delta, ...(b ? [b] : []));
      return { w, delta, b };
    });
    for (const p of probes) {
      const channels = (model.weights[p.kernel].shape as number[]).at(-1)!;
      const outChannels =
        p.layer.getClassName() === 'DepthwiseConv2D'
          ? (model.weights[p.kernel].shape as number[])[2] * channels
          : channels;
      stats.set(p, {
        sumE: new Float64Array(outChannels),
        sumSampleMean2: new Float64Array(outChannels),
        samples: 0,
        sumE2: 0,
        sumY2: 0,
        count: 0,
      });
    }
    const n = calibration[0].shape[0];
    for (let start = 0; start < n; start += batchSize) {
      const size = Math.min(batchSize, n - start);
      const batch = calibration.map((t) => t.slice(start, size));
      const inputs = tf.tidy(() => {
        const out = probeModel!.predict(batch);
        return Array.isArray(out) ? out : [out];
      });
      tf.dispose(batch);
      try {
        for (let k = 0; k < probes.length; k++) {
          const p = probes[k];
          const x = inputs[outputs.indexOf(p.layer.input as tf.SymbolicTensor)];
          const { w, delta, b } = kernels[k];
          let positions = 0;
          const summary = tf.tidy(() => {
            const e = p.apply(x, delta);
            const y = b ? tf.add(p.apply(x, w), b) : p.apply(x, w);
            const c = e.shape[e.shape.length - 1];
            positions = e.size / c;
            const e2 = tf.reshape(e, [-1, c]);
            const perSample = tf.mean(tf.reshape(e, [x.shape[0], -1, c]), 1);
            return tf.concat([
              tf.sum(e2, 0),
              tf.sum(tf.square(perSample), 0),
              tf.stack([tf.sum(tf.square(e)), tf.sum(tf.square(y))]),
            ]);
          });
          const values = await summary.data();
          summary.dispose();
          const s = stats.get(p)!;
          const c = s.sumE.length;
          for (let i = 0; i < c; i++) {
            s.sumE[i] += values[i];
            s.sumSampleMean2[i] += values[c + i];
          }
          s.sumE2 += values[2 * c];
          s.sumY2 += values[2 * c + 1];
          s.count += positions;
          s.samples += x.shape[0];
        }
      } finally {
        tf.dispose(inputs);
      }
    }
    return stats;
  } finally {
    tf.dispose(constants);
    model.dispose();
  }
}

/** The saved model's outputs against the float export's, on the calibration inputs. */
async function outputError(
  reference: tf.LayersModel,
  artifacts: tf.io.ModelArtifacts,
  calibration: tf.Tensor[],
  batchSize: number,
): Promise<OutputError> {
  const saved = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  const n = calibration[0].shape[0];
  let diff = 0;
  let norm = 0;
  let maxAbs = 0;
  let tvSum = 0;
  let agree = 0;
  let probabilities = reference.outputs.length === 1 && reference.outputs[0].shape.length === 2;
  const classes = reference.outputs.length === 1 && reference.outputs[0].shape.length === 2;
  try {
    for (let start = 0; start < n; start += batchSize) {
      const size = Math.min(batchSize, n - start);
      const batch = calibration.map((t) => t.slice(start, size));
      const [y, yq] = [reference, saved].map((m) => {
        const out = m.predict(batch);
        return Array.isArray(out) ? out : [out];
      });
      tf.dispose(batch);
      try {
        for (let o = 0; o < y.length; o++) {
          const [a, b] = await Promise.all([y[o].data(), yq[o].data()]);
          const cols = y[o].shape[y[o].shape.length - 1] ?? 1;
          for (let i = 0; i < a.length; i++) {
            const d = b[i] - a[i];
            diff += d * d;
            norm += a[i] * a[i];
            maxAbs = Math.max(maxAbs, Math.abs(d));
          }
          if (!classes) continue;
          for (let r = 0; r < a.length / cols; r++) {
            let tv = 0;
            let sum = 0;
            let [best, bestQ] = [0, 0];
            for (let j = 0; j < cols; j++) {
              const [p, q] = [a[r * cols + j], b[r * cols + j]];
              tv += Math.abs(q - p);
              sum += p;
              if (p < 0) probabilities = false;
              if (p > a[r * cols + best]) best = j;
              if (q > b[r * cols + bestQ]) bestQ = j;
            }
            if (Math.abs(sum - 1) > 1e-3) probabilities = false;
            tvSum += tv / 2;
            if (best === bestQ) agree++;
          }
        }
      } finally {
        tf.dispose([...y, ...yq]);
      }
    }
  } finally {
    saved.dispose();
  }
  const result: OutputError = {
    samples: n,
    relative: norm === 0 ? Math.sqrt(diff) : Math.sqrt(diff / norm),
    maxAbs,
  };
  if (classes && probabilities) result.totalVariation = tvSum / n;
  if (classes && (reference.outputs[0].shape[1] ?? 0) >= 2) result.top1Agreement = agree / n;
  return result;
}

const percent = (x: number) => `${(100 * x).toPrecision(3)}%`;

/** The 2-byte format that decodes `values` better, float16 unless it overflows. */
function twoByteFormat(values: Float32Array): EncodedWeight {
  let maxAbs = 0;
  for (const v of values) maxAbs = Math.max(maxAbs, Math.abs(v));
  const uint16 = encodeWeight(values, 'uint16');
  if (maxAbs > FLOAT16_MAX) return uint16;
  const half = encodeWeight(values, 'float16');
  return weightError(values, half.decoded).relative <= weightError(values, uint16.decoded).relative
    ? half
    : uint16;
}

/**
 * Exports `model` for inference ({@link exportForInference}), optionally quantizes its weights,
 * and saves it to `destination`. The saved model loads with plain `@tensorflow/tfjs`
 * (`tf.loadLayersModel`, which dequantizes on load; no import of this pack) and predicts what the
 * report's `calibration` entry says; except when it keeps per-sample normalizations (GroupNorm,
 * InstanceNorm, RMSNorm: no built-in equivalent), listed in the report's `kept`: such a model loads
 * where the pack is imported.
 *
 * Quantization follows tensorflowjs_converter (`quantization.py`): per tensor, 'uint8'/'uint16'
 * store q = round((w − min)/scale) over [min, max] nudged so that 0 is exact and tfjs decodes
 * q·scale + min; 'float16' stores the nearest half (ties to even). For 'uint8' (Nagel et al. 2019):
 * - `equalize`: cross-layer equalization through ReLU / identity / padding / pooling (Sec. 3),
 *   exact in float; pairs through ReLU6 are left alone and listed in `notEqualized` (see
 *   `equalize.ts` for why);
 * - `precision: 'mixed'`: starting from every weight at uint8, weights move to a 2-byte format
 *   (float16, or uint16 when it decodes better) in decreasing order of error removed per byte added
 *   while the total stays within `maxBytesRatio` of the float32 bytes. The error is the measured
 *   relative error of the layer's pre-activation output on `calibration` (e_l² with
 *   e_l = ‖(Ŵ − W)·x‖/‖W·x + b‖), or without calibration the weight's own ‖ŵ − w‖/‖w‖;
 * - `biasCorrection` (Sec. 4.2, empirical): b′ = b − E[(Ŵ − W)·x] per output channel of each
 *   uint8 kernel, E over the calibration inputs and output positions, for the channels where that
 *   mean is at least twice its standard error over the calibration samples (elsewhere it is noise,
 *   and subtracting it would add error on new inputs).
 *
 * Nothing is written unless every step succeeds; the input model is never modified.
 *
 * @param model a trained tf.LayersModel (pack layers or built-ins).
 * @param destination a `tf.io.IOHandler`, or a URL string exactly one tf.io save router handles
 *   ('indexeddb://…', 'downloads://…'; 'file://…' in Node after importing `tfjs-dropnorm/node`).
 * @returns what the export did, each weight's format, error and reason, bytes against float32
 *   bytes, and with `calibration` the output error of the saved model on it.
 * @throws DropnormValueError for an unknown option or dtype, a destination no handler routes,
 *   calibration inputs that do not fit the model, uint8-only options with another dtype, a model
 *   with no float32 weight to quantize, non-finite weights, and whatever `exportForInference`
 *   rejects.
 */
export async function saveForInference(
  model: tf.LayersModel,
  destination: string | tf.io.IOHandler,
  options: SaveForInferenceOptions = {},
): Promise<SaveForInferenceResult> {
  assertLayersModel(OWNER, model);
  const o = checkOptions(model, options);
  const handler = saveHandler(destination);
  const exported = exportForInference(model, { fuseActivations: o.fuseActivations });
  try {
    const artifacts = await artifactsOf(exported.model);
    const specs = artifacts.weightSpecs!;
    const values = splitWeights(artifacts);
    const floatIndices = specs
      .map((s, k) => (s.dtype === 'float32' ? k : -1))
      .filter((k) => k >= 0);
    const layerOf = new Map<tf.LayerVariable, string>();
    for (const layer of exported.model.layers)
      for (const w of layer.weights) layerOf.set(w, layer.name);
    const layerNames = exported.model.weights.map((w) => layerOf.get(w) ?? '');
    for (const k of floatIndices) {
      if (!(values[k] as Float32Array).every(Number.isFinite)) {
        throw invalidArgument(
          OWNER,
          `the weight '${specs[k].name}'`,
          'non-finite values',
          'to be finite',
          'Repair or retrain the model before saving it.',
        );
      }
    }
    if (o.quantize !== 'float32' && floatIndices.length === 0) {
      throw invalidArgument(
        OWNER,
        'options.quantize',
        o.quantize,
        'to be left out for a model without float32 weights',
        'The exported model has no float32 weight to quantize.',
      );
    }

    const report: Omit<SaveForInferenceResult, 'saved' | 'bytes' | 'float32Bytes' | 'ratio'> = {
      folded: exported.folded,
      removed: exported.removed,
      replaced: exported.replaced,
      skipped: exported.skipped,
      kept: exported.kept,
      quantize: o.quantize,
      weights: [],
      equalized: [],
      notEqualized: [],
      biasCorrected: [],
    };
    const dtypes = new Map<number, EncodedWeight>();
    const reasons = new Map<number, string>();
    const layerErrors = new Map<number, number>();

    if (o.quantize === 'uint8') {
      if (o.equalize) {
        const eq = equalizeWeights(exported.model, values as Float32Array[]);
        report.equalized = eq.pairs;
        report.notEqualized = eq.skipped;
      }
      const uint8 = new Map(
        floatIndices.map((k) => [k, encodeWeight(values[k] as Float32Array, 'uint8')]),
      );
      // The measured error of each weight at uint8 (squared, relative to its layer's output).
      const score = new Map<number, number>();
      for (const k of floatIndices) {
        score.set(k, weightError(values[k] as Float32Array, uint8.get(k)!.decoded).relative ** 2);
      }
      const measured = o.calibration
        ? await measureLayers(artifacts, values, uint8, o.calibration, o.batchSize)
        : new Map<Probe, LayerStats>();
      const corrections: Array<{
        probe: Probe;
        mean: Float64Array;
        before: number;
        after: number;
        channels: number;
      }> = [];
      for (const [p, s] of measured) {
        if (s.sumY2 === 0) continue;
        // A channel's mean error is corrected where it stands out of its noise: at least twice
        // its standard error over the calibration samples (a correction fitted to noise adds
        // error on new inputs); with one sample, none is.
        const mean = s.sumE.map((v) => v / s.count);
        const n = s.samples;
        const significant = mean.map((m, i) => {
          if (n < 2) return 0;
          const variance = Math.max(0, (s.sumSampleMean2[i] / n - m * m) * (n / (n - 1)));
          return Math.abs(m) >= 2 * Math.sqrt(variance / n) ? 1 : 0;
        });
        const channels = significant.reduce((a, b) => a + b, 0);
        // Σ (e − ē_c)² = Σ e² − N·Σ_c ē_c²: what is left after the bias absorbs the mean.
        let meanSq = 0;
        mean.forEach((m, i) => (meanSq += significant[i] * m * m));
        const before = Math.sqrt(s.sumE2 / s.sumY2);
        const after = Math.sqrt(Math.max(0, s.sumE2 - s.count * meanSq) / s.sumY2);
        const corrected = o.biasCorrection && p.bias !== null && channels > 0;
        score.set(p.kernel, (corrected ? after : before) ** 2);
        layerErrors.set(p.kernel, corrected ? after : before);
        if (corrected) {
          corrections.push({
            probe: p,
            mean: mean.map((m, i) => m * significant[i]),
            before,
            after,
            channels,
          });
        }
        if (p.bias !== null) {
          const b = values[p.bias] as Float32Array;
          const decoded = uint8.get(p.bias)!.decoded;
          // A bias error δ adds δ_c at every output position: Σ δ² · positions.
          let sq = 0;
          for (let i = 0; i < b.length; i++) sq += (decoded[i] - b[i]) ** 2;
          score.set(p.bias, (sq * s.count) / s.sumY2);
          layerErrors.set(p.bias, Math.sqrt((sq * s.count) / s.sumY2));
        }
      }
      for (const k of floatIndices) {
        dtypes.set(k, uint8.get(k)!);
        reasons.set(k, o.precision === 'uniform' ? "precision: 'uniform'" : '');
      }
      if (o.precision === 'mixed') {
        const float32Bytes = floatIndices.reduce(
          (s, k) => s + (values[k] as Float32Array).length * 4,
          0,
        );
        const budget = o.maxBytesRatio * float32Bytes;
        let bytes = floatIndices.reduce((s, k) => s + (values[k] as Float32Array).length, 0);
        const order = [...floatIndices].sort(
          (a, b) =>
            score.get(b)! / (values[b] as Float32Array).length -
            score.get(a)! / (values[a] as Float32Array).length,
        );
        const measure = o.calibration ? 'layer-output error' : 'weight error';
        order.forEach((k, rank) => {
          const n = (values[k] as Float32Array).length;
          const error = Math.sqrt(score.get(k)!);
          const where = `${measure} ${percent(error)} at uint8 (rank ${rank + 1} of ${order.length} by error per byte)`;
          if (error <= o.maxWeightError) {
            reasons.set(k, `uint8: ${where}, within maxWeightError ${o.maxWeightError}`);
          } else if (bytes + n > budget) {
            reasons.set(
              k,
              `uint8: ${where}; 2 bytes per value would exceed maxBytesRatio ${o.maxBytesRatio}`,
            );
          } else {
            bytes += n;
            const two = twoByteFormat(values[k] as Float32Array);
            dtypes.set(k, two);
            reasons.set(
              k,
              `${two.dtype}: ${where}, ${percent(n / (float32Bytes / 4))} of the values`,
            );
          }
        });
      }
      // Only a kernel stored as uint8 has the error its correction was measured for.
      for (const { probe, mean, before, after, channels } of corrections) {
        if (dtypes.get(probe.kernel)!.dtype !== 'uint8') continue;
        const k = probe.bias!;
        const b = values[k] as Float32Array;
        for (let i = 0; i < b.length; i++) b[i] -= mean[i];
        dtypes.set(k, encodeWeight(b, dtypes.get(k)!.dtype));
        report.biasCorrected.push({
          layer: probe.layer.name,
          channels,
          of: mean.length,
          errorBefore: before,
          errorAfter: after,
        });
      }
    } else {
      for (const k of floatIndices) {
        const dtype = o.quantize;
        if (dtype === 'float16') {
          const big = (values[k] as Float32Array).find((v) => Math.abs(v) > FLOAT16_MAX);
          if (big !== undefined) {
            throw invalidArgument(
              OWNER,
              `a value of the weight '${specs[k].name}'`,
              big,
              `to be at most ${FLOAT16_MAX} in magnitude for float16`,
              "Use quantize: 'uint16' (a per-tensor range), or rescale the model.",
            );
          }
        }
        dtypes.set(k, encodeWeight(values[k] as Float32Array, dtype));
        reasons.set(k, `quantize: '${dtype}'`);
      }
    }

    const saved: Array<Float32Array | Uint8Array | EncodedWeight> = values.map(
      (v, k) => dtypes.get(k) ?? v,
    );
    let bytes = 0;
    let float32Bytes = 0;
    specs.forEach((spec, k) => {
      const n = spec.shape.reduce((a, b) => a * b, 1);
      const enc = dtypes.get(k);
      const dtype = enc?.dtype ?? (spec.dtype === 'float32' ? 'float32' : 'int32');
      const error = enc
        ? weightError(values[k] as Float32Array, enc.decoded)
        : { relative: 0, maxAbs: 0 };
      bytes += n * (dtype === 'int32' ? 4 : BYTES_PER_VALUE[dtype]);
      float32Bytes += n * 4;
      const entry: SavedWeight = {
        name: spec.name,
        layer: layerNames[k],
        shape: [...spec.shape],
        dtype,
        bytes: n * (dtype === 'int32' ? 4 : BYTES_PER_VALUE[dtype]),
        relativeError: error.relative,
        maxAbsError: error.maxAbs,
        reason:
          reasons.get(k) ??
          (dtype === 'int32' ? 'int32 weights are stored as they are' : 'not quantized'),
      };
      if (layerErrors.has(k)) entry.layerError = layerErrors.get(k);
      report.weights.push(entry);
    });
    const out = withWeights(artifacts, saved, `tfjs-dropnorm saveForInference (${o.quantize})`);
    const calibration = o.calibration
      ? await outputError(exported.model, out, o.calibration, o.batchSize)
      : undefined;
    const result = await handler.save!(out);
    return {
      ...report,
      bytes,
      float32Bytes,
      ratio: bytes / float32Bytes,
      ...(calibration ? { calibration } : {}),
      saved: result,
    };
  } finally {
    exported.model.dispose();
  }
}
