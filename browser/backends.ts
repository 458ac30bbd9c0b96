/**
 * The backend page: runs the pack's checks on `cpu` and then on the backend named in the URL
 * (`?backend=cpu|wasm|webgl|webgpu`, `&f16=1` for webgl with float16 textures), in the same page,
 * and reports how far the backend is from cpu as numbers (`window.__dropnorm`). The assertions
 * live in `__tests__/browser.test.ts`; this page only measures.
 *
 * Checks (each on a small shape: software GPUs compile a shader per op and shape):
 * - every row of layer_rows.ts (every registered layer class of the pack) in inference and training
 *   mode: output, gradients (input and trainable weights) of Σ y ⊙ r, state after the call;
 * - the seeded masks of every dropout layer, as the zero pattern of ∂Σy/∂x (∂Σy/∂kernel for
 *   DropConnect), compared bit for bit;
 * - a small CNN (conv → BN → ReLU → dropout → dense) trained with SGD, then foldBatchNorm,
 *   exportForInference (and their async forms), recalibrateBatchNorm, mcPredict and mcPredictAsync
 *   on it, and tf.memory() over 50 more steps;
 * - saveForInference of that CNN ('uint8' with calibration, and 'float16') into a memory handler,
 *   loaded back with tfjs's own tf.loadLayersModel(tf.io.fromMemory(…)): its output error against
 *   the float export on the calibration inputs and on other inputs, next to the report's;
 * - the conditioning of BN's input gradient, max over channels of |Σ_b dx| / Σ_b |dx| (the table of
 *   issue 21), pack and built-in;
 * - a spy on dataSync / arraySync / the backend's readSync during the pack's model tools and a
 *   training step (synchronous reads stall the GPU pipeline; on webgpu tfjs warns they are slow).
 * With `f16`, each check also runs with the tfjs built-in counterparts, so the test can require the
 * pack to be no worse than the built-in.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-webgpu';
import * as dn from 'tfjs-dropnorm';
import { conditioningTableAsync } from '../bench/bn_conditioning';
import { LAYER_ROWS, LayerRow, uncoveredLayerClasses } from './layer_rows';
import { publishReport } from './publish';

type Kind = 'pack' | 'builtin';
type Values = Record<string, number[]>;

const params = new URLSearchParams(location.search);
const BACKEND = params.get('backend') ?? 'cpu';
const F16 = params.get('f16') === '1';
/** Run the built-in counterparts too (the f16 comparison needs them). */
const BUILTINS = F16 || params.get('builtins') === '1';

function log(message: string): void {
  console.log(`[backends ${BACKEND}${F16 ? ' f16' : ''}] ${message}`);
}

/** Reads tensors back asynchronously (never on a spied path). */
async function read(tensors: tf.Tensor[]): Promise<number[]> {
  const out: number[] = [];
  for (const t of tensors) out.push(...(await t.data()));
  return out;
}

/** Deterministic non-trivial weights for a built layer (drawn in JS: the same on every backend). */
function setWeights(layer: tf.layers.Layer, seed: number): void {
  const values = layer.weights.map((w, i) =>
    tf.tidy(() => {
      const name = w.originalName;
      const n = tf.randomNormal(w.shape as number[], 0, 1, 'float32', seed + i);
      if (/steps|num_batches/.test(name)) return w.read().clone();
      if (/kernel/.test(name)) return w.read().clone();
      if (/variance/.test(name)) return tf.add(tf.abs(n), 0.5);
      if (/gamma/.test(name)) return tf.add(tf.mul(n, 0.2), 1);
      return tf.mul(n, 0.3);
    }),
  );
  layer.setWeights(values);
  tf.dispose(values);
}

/** Frees a layer's weights (an eagerly called layer cannot `dispose()`: it was never connected). */
function disposeLayer(layer: tf.layers.Layer): void {
  for (const w of layer.weights) w.dispose();
}

/** A built layer with deterministic weights: the row's pack layer or its built-in. */
function buildLayer(row: LayerRow, kind: Kind, seed: number): tf.layers.Layer {
  const layer = kind === 'pack' ? row.make() : row.builtin!();
  layer.build(row.shape);
  setWeights(layer, seed);
  return layer;
}

/** One call of the row's layer: output, gradients of Σ y ⊙ r (input, then trainable weights), state. */
async function layerCall(row: LayerRow, kind: Kind, training: boolean): Promise<Values> {
  const layer = buildLayer(row, kind, 100);
  const x = tf.variable(tf.randomNormal(row.shape, 0, 1, 'float32', 7));
  const vars = layer.trainableWeights.map((w) => w.read() as tf.Variable);
  let y: tf.Tensor | null = null;
  const { value, grads } = tf.variableGrads(() => {
    y = tf.keep(layer.apply(x, { training }) as tf.Tensor);
    const r = tf.randomNormal(y.shape, 0, 1, 'float32', 8);
    return tf.sum(tf.mul(y, r)) as tf.Scalar;
  }, [x, ...vars]);
  const out: Values = {
    output: await read([y!]),
    grads: await read([x, ...vars].map((v) => grads[v.name])),
    state: await read(layer.weights.map((w) => w.read())),
  };
  tf.dispose([value, y!, x, ...Object.values(grads)]);
  disposeLayer(layer);
  return out;
}

/**
 * The seeded mask of the row's first training call: ∂Σy/∂(masked tensor) at x = 1, whose zero
 * pattern is the mask (for GaussianDropout the gradient is the noise itself).
 */
async function maskCall(row: LayerRow, kind: Kind): Promise<number[]> {
  const layer = buildLayer(row, kind, 100);
  const x = tf.variable(tf.ones(row.shape));
  const target =
    row.mask === 'kernel' ? (layer.trainableWeights[0].read() as tf.Variable) : (x as tf.Variable);
  const { value, grads } = tf.variableGrads(
    () => tf.sum(layer.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
    [target],
  );
  const g = await read([grads[target.name]]);
  tf.dispose([value, x, ...Object.values(grads)]);
  disposeLayer(layer);
  return g;
}

/** The small CNN of the model checks, with the pack's or the built-in BN and dropout. */
function cnn(kind: Kind): tf.LayersModel {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  return tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [6, 6, 2],
        filters: 4,
        kernelSize: 3,
        useBias: false,
        kernelInitializer: init(1),
      }),
      kind === 'pack'
        ? dn.layers.batchNorm({ momentum: 0.9 })
        : tf.layers.batchNormalization({ momentum: 0.9 }),
      tf.layers.activation({ activation: 'relu' }),
      kind === 'pack'
        ? dn.layers.dropout({ rate: 0.25, seed: 31 })
        : tf.layers.dropout({ rate: 0.25, seed: 31 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: init(2) }),
    ],
  });
}

/** Counts of synchronous reads, with the functions they came from. */
interface SyncReads {
  /** Tensor.dataSync / Tensor.arraySync calls. */
  tensorReads: number;
  /** Calls of the backend's readSync (every synchronous download, kernels' own included). */
  backendReads: number;
  /** `caller ← caller's caller` of each read, with counts. */
  sites: Record<string, number>;
}

const spy = { active: null as SyncReads | null };

function recordRead(which: 'tensorReads' | 'backendReads'): void {
  const reads = spy.active;
  if (!reads) return;
  reads[which]++;
  if (which !== 'tensorReads') return;
  const names = (new Error().stack ?? '')
    .split('\n')
    .slice(3)
    .map((line) => /at (?:async )?([\w$.<>]+) /.exec(line)?.[1])
    .filter((n): n is string => !!n && !/^(Engine|Tensor|Object)\.|tidy|scopedRun/.test(n))
    .slice(0, 2);
  const site = names.join(' ← ') || 'unknown';
  reads.sites[site] = (reads.sites[site] ?? 0) + 1;
}

/** Wraps dataSync, arraySync and (per backend) readSync once; counts only inside {@link spied}. */
function installSpy(): void {
  const proto = tf.Tensor.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const method of ['dataSync', 'arraySync']) {
    const original = proto[method];
    proto[method] = function (this: unknown, ...args: unknown[]) {
      recordRead('tensorReads');
      return original.apply(this, args);
    };
  }
}

function spyOnBackend(): void {
  const backend = tf.backend() as unknown as Record<string, (...a: unknown[]) => unknown>;
  if (backend.__spied) return;
  backend.__spied = () => true;
  const original = backend.readSync;
  backend.readSync = function (this: unknown, ...args: unknown[]) {
    recordRead('backendReads');
    return original.apply(this, args);
  };
}

async function spied<T>(fn: () => T | Promise<T>): Promise<{ value: T; reads: SyncReads }> {
  const reads: SyncReads = { tensorReads: 0, backendReads: 0, sites: {} };
  spy.active = reads;
  try {
    return { value: await fn(), reads };
  } finally {
    spy.active = null;
  }
}

/** One SGD step of `model` on (x, y) in training mode; returns the loss. */
function trainStep(model: tf.LayersModel, optimizer: tf.Optimizer, x: tf.Tensor, y: tf.Tensor) {
  return optimizer.minimize(
    () =>
      tf.mean(
        tf.metrics.categoricalCrossentropy(y, model.apply(x, { training: true }) as tf.Tensor),
      ) as tf.Scalar,
    true,
  )!;
}

function memory(): Record<string, number> {
  const m = tf.memory() as unknown as Record<string, number>;
  const out: Record<string, number> = { numTensors: m.numTensors, numBytes: m.numBytes };
  for (const key of ['numBytesInGPU', 'numBytesInGPUAllocated', 'numBytesAllocatedInGPU']) {
    if (typeof m[key] === 'number') out[key] = m[key];
  }
  return out;
}

/** The BN moving statistics of a model: values and how many are NaN, ±Inf or exactly 0. */
async function runningStatistics(model: tf.LayersModel) {
  const bn = model.layers[1];
  const weights = bn.weights.filter((w) => /moving_(mean|variance)/.test(w.originalName));
  const values = await read(weights.map((w) => w.read()));
  const varianceValues = await read(
    weights.filter((w) => /variance/.test(w.originalName)).map((w) => w.read()),
  );
  return {
    values,
    nonFinite: values.filter((v) => !Number.isFinite(v)).length,
    zeroVariance: varianceValues.filter((v) => v === 0).length,
    maxAbs: Math.max(...values.map(Math.abs)),
  };
}

interface ModelFacts {
  firstLoss: number;
  lastLoss: number;
  /** max |folded − original| / max |original| of predict on this backend. */
  foldDiff: number;
  exportDiff: number;
  /** max |mcPredictAsync − mcPredict| of the means (same seed) on this backend. */
  mcAsyncDiff: number;
  mcAsyncTicks: number;
  memoryBefore: Record<string, number>;
  memoryAfter: Record<string, number>;
  steps: number;
  statistics: { nonFinite: number; zeroVariance: number; maxAbs: number };
  shiftedStatistics?: { nonFinite: number; zeroVariance: number; maxAbs: number; loss: number };
  syncReads: Record<string, SyncReads>;
  /** saveForInference of the trained model, loaded back with plain tf.loadLayersModel (pack only). */
  saved?: Record<SavedMode, SavedModelFacts>;
}

type SavedMode = 'uint8' | 'float16';

/** The error of a model's outputs against the float export's, as saveForInference reports it. */
interface OutputErrorFacts {
  relative: number;
  maxAbs: number;
  totalVariation: number;
  top1Agreement: number;
}

/** One saveForInference run on this backend and what the loaded artifacts predict. */
export interface SavedModelFacts {
  /** The report's bytes / float32 bytes. */
  ratio: number;
  /** The report's output error on the calibration inputs (against the float export). */
  reported: OutputErrorFacts;
  /** The loaded model's, measured here on the same calibration inputs. */
  loadedCalibration: OutputErrorFacts;
  /** The loaded model's on other inputs (not used for calibration). */
  loadedOther: OutputErrorFacts;
  /** Per weight spec: the report's dtype and the spec's `quantization` as saved. */
  specs: Array<{
    name: string;
    reportDtype: string;
    quantization: { dtype: string; min?: number; scale?: number } | null;
  }>;
  /** Layer class names of the saved topology. */
  classNames: string[];
  /** Those the pack registers (none: plain tfjs resolves every class of the saved model). */
  packClassNames: string[];
  /** Tensors alive after save, load, predict and dispose, minus before (0: no leak). */
  tensorGrowth: number;
}

/** ‖ŷ − y‖/‖y‖, max |ŷ − y|, mean ½Σ|p̂ − p| per row and argmax agreement (rows of `cols`). */
function outputErrorOf(y: ArrayLike<number>, yq: ArrayLike<number>, cols: number) {
  let diff = 0;
  let norm = 0;
  let maxAbs = 0;
  let tv = 0;
  let agree = 0;
  const rows = y.length / cols;
  for (let r = 0; r < rows; r++) {
    let [best, bestQ] = [0, 0];
    for (let j = 0; j < cols; j++) {
      const i = r * cols + j;
      const d = yq[i] - y[i];
      diff += d * d;
      norm += y[i] * y[i];
      maxAbs = Math.max(maxAbs, Math.abs(d));
      tv += Math.abs(d) / 2;
      if (y[i] > y[r * cols + best]) best = j;
      if (yq[i] > yq[r * cols + bestQ]) bestQ = j;
    }
    if (best === bestQ) agree++;
  }
  return {
    relative: Math.sqrt(diff / norm),
    maxAbs,
    totalVariation: tv / rows,
    top1Agreement: agree / rows,
  };
}

/**
 * saveForInference (issue 25) on this backend, 'uint8' (with calibration: equalization, bias
 * correction, mixed precision) and 'float16', into a memory handler; the artifacts loaded with
 * tfjs's own tf.loadLayersModel(tf.io.fromMemory(…)) and their predictions compared with the float
 * export's, as the report measures them.
 */
async function savedModelChecks(
  model: tf.LayersModel,
  calibration: tf.Tensor,
  other: tf.Tensor,
  syncReads: Record<string, SyncReads>,
): Promise<Record<SavedMode, SavedModelFacts>> {
  const exported = dn.exportForInference(model).model;
  const [yCalibration, yOther] = await Promise.all(
    [calibration, other].map(async (x) => {
      const y = exported.predict(x) as tf.Tensor;
      const values = await y.data();
      y.dispose();
      return values;
    }),
  );
  exported.dispose();
  const out = {} as Record<SavedMode, SavedModelFacts>;
  for (const mode of ['uint8', 'float16'] as const) {
    const before = tf.memory().numTensors;
    let artifacts: tf.io.ModelArtifacts | null = null;
    const handler = tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
    });
    const save = await spied(() =>
      dn.saveForInference(model, handler, { quantize: mode, calibration }),
    );
    syncReads[`saveForInference ${mode}`] = save.reads;
    const report = save.value;
    const a = artifacts! as tf.io.ModelArtifacts;
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(a));
    const [qCalibration, qOther] = await Promise.all(
      [calibration, other].map(async (x) => {
        const y = loaded.predict(x) as tf.Tensor;
        const values = await y.data();
        y.dispose();
        return values;
      }),
    );
    loaded.dispose();
    const cols = (model.outputs[0].shape as number[])[1];
    const topology = a.modelTopology as { config: { layers: Array<{ class_name: string }> } };
    out[mode] = {
      ratio: report.ratio,
      reported: report.calibration as OutputErrorFacts,
      loadedCalibration: outputErrorOf(yCalibration, qCalibration, cols),
      loadedOther: outputErrorOf(yOther, qOther, cols),
      specs: a.weightSpecs!.map((spec, k) => ({
        name: spec.name,
        reportDtype: report.weights[k].dtype,
        quantization: spec.quantization
          ? {
              dtype: spec.quantization.dtype as string,
              min: spec.quantization.min,
              scale: spec.quantization.scale,
            }
          : null,
      })),
      classNames: topology.config.layers.map((l) => l.class_name),
      packClassNames: topology.config.layers
        .map((l) => l.class_name)
        .filter((c) => dn.PACK_CLASS_NAMES.includes(c)),
      tensorGrowth: tf.memory().numTensors - before,
    };
  }
  return out;
}

const TRAIN_STEPS = 10;
const MEMORY_STEPS = 50;

/** The model checks: train, fold, export, recalibrate, mcPredict, memory over 50 steps. */
async function modelChecks(
  kind: Kind,
  shifted: boolean,
): Promise<{ values: Values; facts: ModelFacts }> {
  const [x, y, xTest] = tf.tidy(() => {
    const labels = tf.tensor1d(
      Array.from({ length: 16 }, (_, i) => i % 3),
      'int32',
    );
    return [
      tf.randomNormal([16, 6, 6, 2], 0, 1, 'float32', 41),
      tf.oneHot(labels, 3),
      tf.randomNormal([8, 6, 6, 2], 0, 1, 'float32', 42),
    ];
  });
  const model = cnn(kind);
  const optimizer = tf.train.sgd(0.05);
  const values: Values = {};
  const syncReads: Record<string, SyncReads> = {};
  const losses: number[] = [];
  for (let i = 0; i < TRAIN_STEPS; i++) {
    const step = await spied(() => trainStep(model, optimizer, x, y));
    if (i === TRAIN_STEPS - 1) syncReads['training step (BN guard)'] = step.reads;
    losses.push((await step.value.data())[0]);
    step.value.dispose();
  }
  values.weights = await read(model.getWeights());
  const predicted = model.predict(xTest) as tf.Tensor;
  values.predict = await read([predicted]);

  const fold = await spied(() => dn.foldBatchNorm(model));
  syncReads.foldBatchNorm = fold.reads;
  const foldedOut = fold.value.model.predict(xTest) as tf.Tensor;
  values.fold = await read([foldedOut]);
  const exported = await spied(() => dn.exportForInference(model));
  syncReads.exportForInference = exported.reads;
  const exportedOut = exported.value.model.predict(xTest) as tf.Tensor;
  values.export = await read([exportedOut]);
  // The async forms check the statistics with an awaited read: no synchronous read either.
  const foldAsync = await spied(() => dn.foldBatchNormAsync(model));
  syncReads.foldBatchNormAsync = foldAsync.reads;
  foldAsync.value.model.dispose();
  const exportAsync = await spied(() => dn.exportForInferenceAsync(model));
  syncReads.exportForInferenceAsync = exportAsync.reads;
  exportAsync.value.model.dispose();
  const saved = kind === 'pack' ? await savedModelChecks(model, x, xTest, syncReads) : undefined;
  const [foldDiff, exportDiff] = tf.tidy(() => {
    const scale = tf.max(tf.abs(predicted));
    return [foldedOut, exportedOut].map((o) => tf.div(tf.max(tf.abs(tf.sub(o, predicted))), scale));
  });
  const diffs = await read([foldDiff, exportDiff]);
  tf.dispose([foldedOut, exportedOut, foldDiff, exportDiff, predicted]);
  fold.value.model.dispose();
  exported.value.model.dispose();

  const mc = await spied(() => dn.mcPredict<tf.Tensor>(model, xTest, { samples: 8, seed: 5 }));
  syncReads.mcPredict = mc.reads;
  values.mcMean = await read([mc.value.mean]);
  values.mcVariance = await read([mc.value.variance]);
  let mcAsyncTicks = 0;
  const ticker = setInterval(() => mcAsyncTicks++, 1);
  const mcAsync = await spied(() =>
    dn.mcPredictAsync<tf.Tensor>(model, xTest, { samples: 8, seed: 5, batchSize: 4 }),
  );
  clearInterval(ticker);
  syncReads.mcPredictAsync = mcAsync.reads;
  const mcSync = dn.mcPredict<tf.Tensor>(model, xTest, { samples: 8, seed: 5, batchSize: 4 });
  const mcAsyncDiff = await read([
    tf.tidy(() => tf.max(tf.abs(tf.sub(mcAsync.value.mean, mcSync.mean)))),
  ]);
  tf.dispose([mc.value.mean, mc.value.variance, mcAsync.value.mean, mcAsync.value.variance]);
  tf.dispose([mcSync.mean, mcSync.variance]);

  // Memory over 50 more steps (after the steps above: shaders, optimizer and texture pool are warm).
  const memoryBefore = memory();
  for (let i = 0; i < MEMORY_STEPS; i++) {
    const loss = trainStep(model, optimizer, x, y);
    if (i % 10 === 9) await loss.data(); // let the GPU queue drain now and then
    loss.dispose();
  }
  await read([model.getWeights()[0]]);
  const memoryAfter = memory();
  const statistics = await runningStatistics(model);
  delete (statistics as Partial<typeof statistics>).values;

  const recal = await spied(() => dn.recalibrateBatchNorm(model, x));
  syncReads.recalibrateBatchNorm = recal.reads;
  values.recalibrated = (await runningStatistics(model)).values;

  let shiftedStatistics: ModelFacts['shiftedStatistics'];
  if (shifted) {
    // The f16 finding: inputs shifted by +300 drive the pack's moving mean far off.
    const shiftedModel = cnn(kind);
    const shiftedOptimizer = tf.train.sgd(0.05);
    const xs = tf.add(x, 300);
    let loss = 0;
    for (let i = 0; i < 20; i++) {
      const l = trainStep(shiftedModel, shiftedOptimizer, xs, y);
      loss = (await l.data())[0];
      l.dispose();
    }
    const s = await runningStatistics(shiftedModel);
    values.shiftedStatistics = s.values;
    shiftedStatistics = {
      nonFinite: s.nonFinite,
      zeroVariance: s.zeroVariance,
      maxAbs: s.maxAbs,
      loss,
    };
    tf.dispose(xs);
    shiftedModel.dispose();
    shiftedOptimizer.dispose();
  }
  model.dispose();
  optimizer.dispose();
  tf.dispose([x, y, xTest]);
  return {
    values,
    facts: {
      firstLoss: losses[0],
      lastLoss: losses[losses.length - 1],
      foldDiff: diffs[0],
      exportDiff: diffs[1],
      mcAsyncDiff: mcAsyncDiff[0],
      mcAsyncTicks,
      memoryBefore,
      memoryAfter,
      steps: MEMORY_STEPS,
      statistics,
      shiftedStatistics,
      syncReads,
      saved,
    },
  };
}

/** ∂/∂filter of Σ conv2d and Σ depthwiseConv2d (the wasm run checks the pack's kernels with it). */
async function filterGradients(): Promise<number[]> {
  const grads = tf.tidy(() => {
    const x = tf.randomNormal([2, 7, 7, 3], 0, 1, 'float32', 21) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 3, 4], 0, 1, 'float32', 22) as tf.Tensor4D;
    const d = tf.randomNormal([3, 3, 3, 2], 0, 1, 'float32', 23) as tf.Tensor4D;
    return [
      tf.grad((f: tf.Tensor) => tf.sum(tf.conv2d(x, f as tf.Tensor4D, 2, 'same')))(w),
      tf.grad((f: tf.Tensor) => tf.sum(tf.depthwiseConv2d(x, f as tf.Tensor4D, 1, 'valid')))(d),
    ];
  });
  const out = await read(grads);
  tf.dispose(grads);
  return out;
}

interface SuiteOutput {
  values: Values;
  masks: Values;
  models: Partial<Record<Kind, ModelFacts>>;
  conditioning: Array<{ input: string; pack: number; builtin: number }>;
  seconds: Record<string, number>;
}

/** Every check on the current backend. */
async function suite(): Promise<SuiteOutput> {
  const kinds: Kind[] = BUILTINS ? ['pack', 'builtin'] : ['pack'];
  const values: Values = {};
  const masks: Values = {};
  const seconds: Record<string, number> = {};
  let t0 = performance.now();
  const lap = (name: string) => {
    const t = performance.now();
    seconds[name] = (t - t0) / 1000;
    t0 = t;
  };
  for (const row of LAYER_ROWS) {
    for (const kind of kinds) {
      if (kind === 'builtin' && !row.builtin) continue;
      for (const training of [false, true]) {
        const out = await layerCall(row, kind, training);
        for (const [key, v] of Object.entries(out)) {
          values[`${kind}|${row.name}|${training ? 'training' : 'inference'}|${key}`] = v;
        }
      }
      if (row.mask && (kind === 'pack' || row.mask === 'input')) {
        masks[`${kind}|${row.name}`] = await maskCall(row, kind);
      }
    }
  }
  lap('layers');
  const models: SuiteOutput['models'] = {};
  for (const kind of kinds) {
    const { values: v, facts } = await modelChecks(kind, F16);
    for (const [key, value] of Object.entries(v)) values[`${kind}|model|${key}`] = value;
    models[kind] = facts;
  }
  lap('models');
  // Issue 21's table (bench/bn_conditioning.ts, as the jest tests run it) on a small shape.
  const rows = await conditioningTableAsync(() => dn.layers.batchNorm(), { shape: [64, 8] });
  const table = rows.map(({ label, pack, builtin }) => ({ input: label, pack, builtin }));
  lap('conditioning');
  return { values, masks, models, conditioning: table, seconds };
}

/** max |a − b| / max |b| (0 when both are all zero; Infinity on NaN or a length mismatch). */
function relativeError(a: number[], b: number[]): number {
  if (a.length !== b.length) return Infinity;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (Number.isNaN(d)) return Infinity;
    diff = Math.max(diff, d);
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff === 0 ? 0 : diff / (scale || 1);
}

/** What the page reports: errors of the backend against cpu, and the backend's own facts. */
export interface BackendReport {
  backend: string;
  f16: boolean;
  float32Textures: boolean | null;
  userAgent: string;
  /** Registered layer classes of the pack without a row in layer_rows.ts. */
  uncovered: string[];
  /** `kind|row|mode|output|grads|state` and `kind|model|…` → relative error against cpu. */
  errors: Record<string, number>;
  /** `kind|row` → number of mask entries whose zero/non-zero differs from cpu's, and size. */
  masks: Record<string, { differing: number; size: number; bitIdentical: boolean }>;
  models: Partial<Record<Kind, ModelFacts>>;
  /** The same facts on cpu (losses, statistics) for comparison. */
  cpuModels: Partial<Record<Kind, ModelFacts>>;
  /** The conditioning table on cpu and on this backend. */
  conditioning: { cpu: SuiteOutput['conditioning']; backend: SuiteOutput['conditioning'] };
  wasm?: { added: string[]; gradientError: number };
  seconds: { cpu: Record<string, number>; backend: Record<string, number>; total: number };
}

async function run(): Promise<BackendReport> {
  const start = performance.now();
  installSpy();
  await tf.setBackend('cpu');
  spyOnBackend();
  log('cpu reference');
  const reference = await suite();
  const referenceFilters = BACKEND === 'wasm' ? await filterGradients() : [];
  let wasm: BackendReport['wasm'];
  if (BACKEND === 'wasm') setWasmPaths('./');
  if (F16) {
    tf.env().set('WEBGL_FORCE_F16_TEXTURES', true);
    tf.env().set('WEBGL_RENDER_FLOAT32_ENABLED', false);
  }
  if (!(await tf.setBackend(BACKEND))) throw new Error(`backend ${BACKEND} did not initialize`);
  spyOnBackend();
  if (BACKEND === 'wasm') {
    const { added } = dn.registerWasmTrainingKernels();
    wasm = { added, gradientError: relativeError(await filterGradients(), referenceFilters) };
  }
  log(`${tf.getBackend()} checks`);
  const target = await suite();
  const errors: Record<string, number> = {};
  for (const [key, ref] of Object.entries(reference.values)) {
    errors[key] = relativeError(target.values[key] ?? [], ref);
  }
  const masks: BackendReport['masks'] = {};
  for (const [key, ref] of Object.entries(reference.masks)) {
    const got = target.masks[key] ?? [];
    let differing = 0;
    for (let i = 0; i < ref.length; i++) if ((ref[i] === 0) !== (got[i] === 0)) differing++;
    const bitIdentical =
      got.length === ref.length &&
      new Uint32Array(new Float32Array(got).buffer).every(
        (bits, i) => bits === new Uint32Array(new Float32Array(ref).buffer)[i],
      );
    masks[key] = { differing, size: ref.length, bitIdentical };
  }
  return {
    backend: tf.getBackend(),
    f16: F16,
    float32Textures:
      tf.getBackend() === 'webgl' ? tf.env().getBool('WEBGL_RENDER_FLOAT32_ENABLED') : null,
    userAgent: navigator.userAgent,
    uncovered: uncoveredLayerClasses(),
    errors,
    masks,
    models: target.models,
    cpuModels: reference.models,
    conditioning: { cpu: reference.conditioning, backend: target.conditioning },
    wasm,
    seconds: {
      cpu: reference.seconds,
      backend: target.seconds,
      total: (performance.now() - start) / 1000,
    },
  };
}

publishReport(run, { show: true });
