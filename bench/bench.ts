/**
 * `npm run bench`: the pack's layers against the tfjs built-ins they replace, as one training step
 * and one forward pass of a fixed model, A/B interleaved (see experiments/lib/timing.ts), plus foldBatchNorm's
 * inference speedup. Writes BENCHMARKS.md (machine, backend, versions, table, targets) and
 * reports/bench.json.
 *
 * Models: an MLP 784-512-512-10 at batch 128 and a small CNN at batch 32, on cpu and wasm (wasm
 * trains conv nets with the pack's gradient kernels, which pickBackend registers; ./wasm_training.ts
 * times them). Each pair shares initial weights.
 *
 * Targets (benchmarks, not tests): pack / built-in median training-step ratio ≤ 1.05 for every
 * dropout variant, ≤ 1.00 for BatchNorm; folded / unfolded predict latency ≤ 0.8; a BatchNorm
 * training step on a masked rank-3 batch ≤ 1.3 × the same step unmasked; a renorm BatchNorm step
 * ≤ 1.15 × the plain one, Ghost BatchNorm (4 virtual batches) ≤ 1.25 ×, renorm inference ≤ 1.05 ×;
 * a GroupNorm layer step ≤ 1.3 × the pack's BatchNorm step, an RMSNorm step ≤ 1.0 × tfjs's
 * LayerNormalization step.
 *
 * Flags: --backends cpu,wasm (default: both), --runs 20, --warmup 3, --quick (5 runs, 1 warm-up,
 * MLP only), --out BENCHMARKS.md, --json reports/bench.json, --only norms (only the GroupNorm /
 * RMSNorm rows of issue 22, printed; no file written).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import * as tf from '@tensorflow/tfjs';
import * as dn from 'tfjs-dropnorm';
import { pickBackend } from 'tfjs-dropnorm/node';
import { parseArgs } from '../experiments/lib/cli';
import { fmt, formatTable, markdownTable, toJson } from '../experiments/lib/report';
import { ABResult, interleaved, summarize } from '../experiments/lib/timing';
import { mobileNetV2Like } from './models';
import { measureWasmTraining } from './wasm_training';

type LayerFactory = () => tf.layers.Layer;

/** A pack layer and the built-in it replaces, as they sit in the benchmark models. */
interface Pair {
  name: string;
  pack: LayerFactory;
  builtin: LayerFactory;
  target: number;
  /** For rank-2 activations, the layer needs a [batch, steps, channels] view. */
  sequence?: boolean;
  /** Runs in the CNN too (after each conv). */
  cnn: boolean;
}

const PAIRS: Pair[] = [
  {
    name: 'Dropout 0.5',
    pack: () => dn.layers.dropout({ rate: 0.5 }),
    builtin: () => tf.layers.dropout({ rate: 0.5 }),
    target: 1.05,
    cnn: true,
  },
  {
    name: 'SpatialDropout1D 0.3',
    pack: () => dn.layers.spatialDropout1d({ rate: 0.3 }),
    builtin: () => tf.layers.spatialDropout1d({ rate: 0.3 }),
    target: 1.05,
    sequence: true,
    cnn: false,
  },
  {
    name: 'GaussianDropout 0.3',
    pack: () => dn.layers.gaussianDropout({ rate: 0.3 }),
    builtin: () => tf.layers.gaussianDropout({ rate: 0.3 }),
    target: 1.05,
    cnn: true,
  },
  {
    name: 'AlphaDropout 0.1',
    pack: () => dn.layers.alphaDropout({ rate: 0.1 }),
    builtin: () => tf.layers.alphaDropout({ rate: 0.1 }),
    target: 1.05,
    cnn: true,
  },
  {
    name: 'BatchNorm',
    pack: () => dn.layers.batchNorm(),
    builtin: () => tf.layers.batchNormalization(),
    target: 1.0,
    cnn: true,
  },
];

function seeded(seed: number) {
  return tf.initializers.glorotUniform({ seed });
}

/** MLP 784-512-512-10 with `layer` after each hidden Dense. */
function mlp(layer: LayerFactory | null, sequence = false): tf.LayersModel {
  const input = tf.input({ shape: [784] });
  let h: tf.SymbolicTensor = input;
  for (const [i, units] of [512, 512].entries()) {
    h = tf.layers.dense({ units, kernelInitializer: seeded(i + 1) }).apply(h) as tf.SymbolicTensor;
    if (layer) {
      if (sequence)
        h = tf.layers.reshape({ targetShape: [16, units / 16] }).apply(h) as tf.SymbolicTensor;
      h = layer().apply(h) as tf.SymbolicTensor;
      if (sequence) h = tf.layers.flatten().apply(h) as tf.SymbolicTensor;
    }
    h = tf.layers.activation({ activation: 'relu' }).apply(h) as tf.SymbolicTensor;
  }
  const out = tf.layers
    .dense({ units: 10, activation: 'softmax', kernelInitializer: seeded(9) })
    .apply(h) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  model.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
  return model;
}

/** Small CNN on 28×28×1: conv16 → layer → relu → pool → conv32 → layer → relu → pool → dense 10. */
function cnn(layer: LayerFactory | null): tf.LayersModel {
  const layers: tf.layers.Layer[] = [];
  for (const [i, filters] of [16, 32].entries()) {
    layers.push(
      tf.layers.conv2d({
        filters,
        kernelSize: 3,
        padding: 'same',
        kernelInitializer: seeded(20 + i),
        ...(i === 0 ? { inputShape: [28, 28, 1] } : {}),
      }),
    );
    if (layer) layers.push(layer());
    layers.push(
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
    );
  }
  layers.push(
    tf.layers.flatten(),
    tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: seeded(29) }),
  );
  const model = tf.sequential({ layers });
  model.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
  return model;
}

/**
 * A padded sequence batch [batch, 32, 256]: sequence i keeps its first 8…32 timesteps, rest 0.
 * Inputs and targets draw from seeds derived with mixSeed (`seed + k` would collide across calls).
 */
function sequenceBatch(batch: number, seed: number) {
  return tf.tidy(() => {
    const lengths = tf.randomUniform([batch, 1], 8, 33, 'int32', seed);
    const mask = tf.less(tf.range(0, 32, 1, 'int32').expandDims(0), lengths);
    const x = tf.mul(
      tf.randomNormal([batch, 32, 256], 0, 1, 'float32', dn.mixSeed(seed, 1)),
      tf.expandDims(tf.cast(mask, 'float32'), 2),
    );
    return { x, mask, y: tf.randomNormal([batch, 32, 256], 0, 1, 'float32', dn.mixSeed(seed, 2)) };
  });
}

/**
 * The masked BatchNorm rows on a padded [64, 32, 256] batch.
 * 1. BN training step (forward, backward to x, γ and β, statistics update) with the [64, 32] mask
 *    tf.layers.masking would pass, against the same step without it: the cost of masked moments
 *    and the masked backward (target ≤ 1.3).
 * 2. For information, whole models Masking(0) → BN → ReLU vs BN → ReLU (trainOnBatch, MSE): adds
 *    the cost of tfjs's Masking layer. Masking comes first because tfjs cannot train a Masking
 *    layer placed after a trainable one (no gradient for its `any`).
 */
async function measureMaskedBn(
  backend: string,
  opts: { runs: number; warmup: number },
): Promise<Measurement[]> {
  const batch = sequenceBatch(64, 40);
  const masked = dn.layers.batchNorm();
  const plain = dn.layers.batchNorm();
  const xv = tf.variable(batch.x);
  for (const l of [masked, plain]) l.build(batch.x.shape);
  const layerStep = (l: tf.layers.Layer, kwargs: Record<string, unknown>) => () => {
    const { value, grads } = tf.variableGrads(
      () =>
        tf.sum(
          tf.mul(l.apply(xv, { training: true, ...kwargs }) as tf.Tensor, batch.y),
        ) as tf.Scalar,
    );
    grads[xv.name].dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  };
  const layer = await interleaved(
    layerStep(masked, { mask: batch.mask }),
    layerStep(plain, {}),
    opts,
  );
  const sequenceModel = (withMasking: boolean) => {
    const layers: tf.layers.Layer[] = [];
    if (withMasking) layers.push(tf.layers.masking({ maskValue: 0, inputShape: [32, 256] }));
    layers.push(
      dn.layers.batchNorm(withMasking ? {} : { inputShape: [32, 256] }),
      tf.layers.activation({ activation: 'relu' }),
    );
    const model = tf.sequential({ layers });
    model.compile({ optimizer: tf.train.sgd(0.01), loss: 'meanSquaredError' });
    return model;
  };
  const a = sequenceModel(true);
  const b = sequenceModel(false);
  const step = (m: tf.LayersModel) => () => m.trainOnBatch(batch.x, batch.y);
  const model = await interleaved(step(a), step(b), opts);
  a.dispose();
  b.dispose();
  // Never part of a model, so Layer.dispose would refuse: free their variables directly.
  for (const l of [masked, plain]) l.weights.forEach((w) => w.dispose());
  tf.dispose([xv, batch.x, batch.mask, batch.y]);
  const common = { backend, kind: 'masked train step' as const };
  return [
    {
      ...common,
      model: 'BN layer step on [64, 32, 256], ragged lengths 8–32',
      pair: 'BatchNorm with mask / without',
      result: layer,
      target: 1.3,
    },
    {
      ...common,
      model: 'Masking → BN → ReLU vs BN → ReLU, same batch',
      pair: 'BatchNorm model with tf.layers.masking / without',
      result: model,
      target: null,
    },
  ];
}

/**
 * Batch Renormalization and Ghost BatchNorm against the pack's plain BatchNorm (issue 15), as a BN
 * layer training step (forward, backward to x, γ and β, statistics update) on the activations of
 * the bench's MLP ([128, 512]) and of its CNN's first BN ([32, 28, 28, 16]), and as an inference
 * forward, then as a training step of the bench's MLP with a BN after each hidden Dense. Targets:
 * renorm step ≤ 1.15 × plain; Ghost BN with 4 virtual batches ≤ 1.25 × plain; inference ≤ 1.05 ×
 * plain (it is the same kernel: a ratio of 1 up to noise). The layer step on [128, 512] is the
 * hard case: a few milliseconds, in which tfjs's per-op overhead makes renorm's extra per-channel
 * ops visible.
 */
async function measureRenormGhost(
  backend: string,
  opts: { runs: number; warmup: number },
  quick: boolean,
): Promise<Measurement[]> {
  const shapes: Array<[string, number[]]> = [['BN layer on [128, 512] (MLP)', [128, 512]]];
  if (!quick) shapes.push(['BN layer on [32, 28, 28, 16] (CNN)', [32, 28, 28, 16]]);
  const out: Measurement[] = [];
  for (const [model, shape] of shapes) {
    const x = tf.variable(tf.randomNormal(shape, 0.5, 2, 'float32', dn.mixSeed(50, 0)));
    const dy = tf.randomNormal(shape, 0, 1, 'float32', dn.mixSeed(50, 1));
    const make = (args: Parameters<typeof dn.layers.batchNorm>[0]) => {
      const layer = dn.layers.batchNorm(args);
      layer.build(shape);
      return layer;
    };
    const plain = make({});
    const renorm = make({ renorm: true, renormClipping: { rmax: 3, dmax: 5 } });
    const ghost = make({ virtualBatchSize: shape[0] / 4 });
    const step = (l: tf.layers.Layer) => () => {
      const { value, grads } = tf.variableGrads(
        () => tf.sum(tf.mul(l.apply(x, { training: true }) as tf.Tensor, dy)) as tf.Scalar,
      );
      grads[x.name].dataSync();
      tf.dispose([value, ...Object.values(grads)]);
    };
    const forward = (l: tf.layers.Layer) => () => {
      const y = l.apply(x) as tf.Tensor;
      y.dataSync();
      y.dispose();
    };
    const common = { backend, model };
    out.push(
      {
        ...common,
        kind: 'renorm/ghost train step',
        pair: 'BatchNorm renorm / plain',
        result: await interleaved(step(renorm), step(plain), opts),
        target: 1.15,
      },
      {
        ...common,
        kind: 'renorm/ghost train step',
        pair: `BatchNorm virtualBatchSize ${shape[0] / 4} (4 virtual batches) / plain`,
        result: await interleaved(step(ghost), step(plain), opts),
        target: 1.25,
      },
      {
        ...common,
        kind: 'renorm/ghost forward',
        pair: 'BatchNorm renorm / plain, inference',
        result: await interleaved(forward(renorm), forward(plain), opts),
        target: 1.05,
      },
    );
    // Never part of a model, so Layer.dispose would refuse: free their variables directly.
    for (const l of [plain, renorm, ghost]) l.weights.forEach((w) => w.dispose());
    tf.dispose([x, dy]);
  }
  // The same in the whole MLP (trainOnBatch), where the BN is a small part of a step.
  const batch = {
    x: tf.randomNormal([128, 784], 0, 1, 'float32', dn.mixSeed(52, 0)),
    y: tf.oneHot(tf.randomUniform([128], 0, 10, 'int32', dn.mixSeed(52, 1)), 10),
  };
  const models = {
    plain: mlp(() => dn.layers.batchNorm()),
    renorm: mlp(() => dn.layers.batchNorm({ renorm: true, renormClipping: { rmax: 3, dmax: 5 } })),
    ghost: mlp(() => dn.layers.batchNorm({ virtualBatchSize: 32 })),
  };
  models.renorm.setWeights(models.plain.getWeights());
  models.ghost.setWeights(models.plain.getWeights());
  const train = (m: tf.LayersModel) => () => m.trainOnBatch(batch.x, batch.y);
  const model = 'MLP 784-512-512-10 + BN, batch 128';
  out.push(
    {
      backend,
      model,
      kind: 'renorm/ghost train step',
      pair: 'BatchNorm renorm / plain (model)',
      result: await interleaved(train(models.renorm), train(models.plain), opts),
      target: 1.15,
    },
    {
      backend,
      model,
      kind: 'renorm/ghost train step',
      pair: 'BatchNorm virtualBatchSize 32 / plain (model)',
      result: await interleaved(train(models.ghost), train(models.plain), opts),
      target: 1.25,
    },
  );
  Object.values(models).forEach((m) => m.dispose());
  tf.dispose([batch.x, batch.y]);
  return out;
}

/**
 * The batch-independent norms (issue 22), as one layer training step (forward, backward to x and
 * to every weight): GroupNorm (4 groups of 4 channels) against the pack's BatchNorm on the CNN's
 * first conv features [32, 28, 28, 16], target ≤ 1.3; RMSNorm against tfjs's LayerNormalization on
 * the MLP's activations [128, 512] and on a sequence [32, 64, 128], target ≤ 1.0.
 */
async function measureNorms(
  backend: string,
  opts: { runs: number; warmup: number },
  quick: boolean,
): Promise<Measurement[]> {
  const cases: Array<{
    model: string;
    shape: number[];
    pair: string;
    a: () => tf.layers.Layer;
    b: () => tf.layers.Layer;
    target: number;
  }> = [
    {
      model: 'norm layer on [32, 28, 28, 16] (CNN)',
      shape: [32, 28, 28, 16],
      pair: 'GroupNorm 4 groups / pack BatchNorm',
      a: () => dn.layers.groupNorm({ groups: 4 }),
      b: () => dn.layers.batchNorm(),
      target: 1.3,
    },
    {
      model: 'norm layer on [32, 16, 28, 28] (CNN, channels-first)',
      shape: [32, 16, 28, 28],
      pair: 'GroupNorm 4 groups axis 1 / pack BatchNorm axis 1',
      a: () => dn.layers.groupNorm({ groups: 4, axis: 1 }),
      b: () => dn.layers.batchNorm({ axis: 1 }),
      target: 1.3,
    },
    {
      model: 'norm layer on [128, 512] (MLP)',
      shape: [128, 512],
      pair: 'RMSNorm / tf.layers.layerNormalization',
      a: () => dn.layers.rmsNorm(),
      b: () => tf.layers.layerNormalization(),
      target: 1.0,
    },
    {
      model: 'norm layer on [32, 64, 128] (sequence)',
      shape: [32, 64, 128],
      pair: 'RMSNorm / tf.layers.layerNormalization',
      a: () => dn.layers.rmsNorm(),
      b: () => tf.layers.layerNormalization(),
      target: 1.0,
    },
  ];
  const out: Measurement[] = [];
  // --quick: one GroupNorm and one RMSNorm row.
  for (const c of quick ? [cases[0], cases[2]] : cases) {
    const x = tf.variable(tf.randomNormal(c.shape, 0.5, 2, 'float32', dn.mixSeed(53, 0)));
    const dy = tf.randomNormal(c.shape, 0, 1, 'float32', dn.mixSeed(53, 1));
    const make = (f: () => tf.layers.Layer) => {
      const layer = f();
      layer.build(c.shape);
      return layer;
    };
    const [a, b] = [make(c.a), make(c.b)];
    const step = (l: tf.layers.Layer) => () => {
      const { value, grads } = tf.variableGrads(
        () => tf.sum(tf.mul(l.apply(x, { training: true }) as tf.Tensor, dy)) as tf.Scalar,
      );
      grads[x.name].dataSync();
      tf.dispose([value, ...Object.values(grads)]);
    };
    out.push({
      backend,
      model: c.model,
      kind: 'norm train step',
      pair: c.pair,
      result: await interleaved(step(a), step(b), opts),
      target: c.target,
    });
    // Never part of a model, so Layer.dispose would refuse: free their variables directly.
    for (const l of [a, b]) l.weights.forEach((w) => w.dispose());
    tf.dispose([x, dy]);
  }
  return out;
}

interface Measurement {
  backend: string;
  model: string;
  pair: string;
  kind:
    | 'train step'
    | 'forward'
    | 'fold predict'
    | 'masked train step'
    | 'export predict'
    | 'export time'
    | 'renorm/ghost train step'
    | 'renorm/ghost forward'
    | 'norm train step';
  result: ABResult;
  target: number | null;
}

async function measurePair(
  backend: string,
  modelName: string,
  make: (l: LayerFactory | null) => tf.LayersModel,
  pair: Pair,
  batch: { x: tf.Tensor; y: tf.Tensor },
  opts: { runs: number; warmup: number },
): Promise<Measurement[]> {
  const a = make(pair.pack);
  const b = make(pair.builtin);
  b.setWeights(a.getWeights());
  const step = (m: tf.LayersModel) => () => m.trainOnBatch(batch.x, batch.y);
  const forward = (m: tf.LayersModel) => async () => {
    const y = m.predict(batch.x) as tf.Tensor;
    await y.data();
    y.dispose();
  };
  const train = await interleaved(step(a), step(b), opts);
  const fwd = await interleaved(forward(a), forward(b), opts);
  a.dispose();
  b.dispose();
  return [
    {
      backend,
      model: modelName,
      pair: pair.name,
      kind: 'train step',
      result: train,
      target: pair.target,
    },
    { backend, model: modelName, pair: pair.name, kind: 'forward', result: fwd, target: null },
  ];
}

async function measureFold(
  backend: string,
  modelName: string,
  model: tf.LayersModel,
  x: tf.Tensor,
  opts: { runs: number; warmup: number },
): Promise<Measurement> {
  // Non-trivial statistics, as after training.
  model.layers.forEach((l, i) => {
    if (l instanceof dn.BatchNorm) {
      l.setWeights(
        l
          .getWeights()
          .map((w, j) =>
            j === 3
              ? tf.randomUniform(w.shape, 0.5, 2, 'float32', i)
              : tf.randomNormal(w.shape, j === 0 ? 1 : 0, 0.3, 'float32', i + j),
          ),
      );
    }
  });
  const { model: folded } = dn.foldBatchNorm(model);
  const predict = (m: tf.LayersModel) => async () => {
    const y = m.predict(x) as tf.Tensor;
    await y.data();
    y.dispose();
  };
  const result = await interleaved(predict(folded), predict(model), opts);
  folded.dispose();
  return {
    backend,
    model: modelName,
    pair: 'foldBatchNorm (folded / unfolded)',
    kind: 'fold predict',
    result,
    target: 0.8,
  };
}

/**
 * exportForInference on the MobileNetV2-shaped model (158 layers, 52 BN) at 224×224, batch 1:
 * predict latency exported / original (target ≤ 0.7 on wasm), and the time the export itself takes
 * (target ≤ 2 s; its row shows the export in the first column and the 2 s budget in the second).
 */
async function measureExport(
  backend: string,
  opts: { runs: number; warmup: number },
): Promise<Measurement[]> {
  const modelName = 'MobileNetV2 224×224 (158 layers, 52 BN), batch 1';
  const model = mobileNetV2Like({ inputSize: 224 });
  const x = tf.randomNormal([1, 224, 224, 3], 0, 1, 'float32', 7);
  const exportMs: number[] = [];
  let exported: tf.LayersModel | null = null;
  for (let i = 0; i < Math.max(1, Math.min(opts.runs, 5)); i++) {
    exported?.dispose();
    const t0 = performance.now();
    exported = dn.exportForInference(model).model;
    exportMs.push(performance.now() - t0);
  }
  const predict = (m: tf.LayersModel) => async () => {
    const y = m.predict(x) as tf.Tensor;
    await y.data();
    y.dispose();
  };
  // The pure-JS cpu backend needs seconds per 224×224 prediction: fewer runs there.
  const runs = backend === 'cpu' ? { runs: Math.min(opts.runs, 6), warmup: 1 } : opts;
  const latency = await interleaved(predict(exported!), predict(model), runs);
  exported!.dispose();
  model.dispose();
  x.dispose();
  const time = summarize(exportMs);
  const budget = { median: 2000, q1: 2000, q3: 2000, runs: 1 };
  return [
    {
      backend,
      model: modelName,
      pair: 'exportForInference (exported / original)',
      kind: 'export predict',
      result: latency,
      target: backend === 'wasm' ? 0.7 : null,
    },
    {
      backend,
      model: modelName,
      pair: 'exportForInference itself (ms / 2000 ms budget)',
      kind: 'export time',
      result: {
        a: time,
        b: budget,
        ratio: time.median / budget.median,
        pairedRatio: time.median / budget.median,
        callsPerSample: 1,
      },
      target: 1,
    },
  ];
}

const NOTES_MARK =
  '<!-- notes: hand-written analysis below is kept when the file is regenerated -->';

/** The hand-written analysis section of an existing BENCHMARKS.md, kept across regenerations. */
function keptNotes(file: string): string {
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const at = old.indexOf(NOTES_MARK);
  return at >= 0 ? '\n' + old.slice(at) : `\n${NOTES_MARK}\n\n## Analysis\n\n(none yet)\n`;
}

function inputs(shape: number[], seed: number) {
  const x = tf.randomNormal(shape, 0, 1, 'float32', seed);
  const y = tf.oneHot(tf.randomUniform([shape[0]], 0, 10, 'int32', dn.mixSeed(seed, 1)), 10);
  return { x, y };
}

async function main(): Promise<void> {
  const args = parseArgs(
    {
      backends: 'cpu,wasm',
      runs: 20,
      warmup: 3,
      quick: false,
      out: 'BENCHMARKS.md',
      json: 'reports/bench.json',
      only: '',
    },
    process.argv.slice(2),
    {
      usage:
        'npm run bench -- [--backends cpu,wasm] [--runs 20] [--warmup 3] [--quick] [--only norms]',
    },
  );
  const opts = args.quick ? { runs: 5, warmup: 1 } : { runs: args.runs, warmup: args.warmup };
  const all: Measurement[] = [];
  const t0 = Date.now();
  // No tfjs Node banner ("install our node backend"): pickBackend's line names the backend used.
  tf.enableProdMode();
  if (args.only !== '' && args.only !== 'norms') {
    throw new Error(`bench: --only takes 'norms' (the one group so far), received ${args.only}`);
  }
  for (const backend of args.backends.split(',')) {
    await pickBackend({ backend });
    if (args.only === 'norms') {
      console.error(`${backend} GroupNorm / RMSNorm…`);
      all.push(...(await measureNorms(backend, opts, args.quick)));
      continue;
    }
    const mlpBatch = inputs([128, 784], 1);
    for (const pair of PAIRS) {
      console.error(`${backend} MLP ${pair.name}…`);
      all.push(
        ...(await measurePair(
          backend,
          'MLP 784-512-512-10, batch 128',
          (l) => mlp(l, pair.sequence),
          pair,
          mlpBatch,
          opts,
        )),
      );
    }
    console.error(`${backend} masked BatchNorm…`);
    all.push(...(await measureMaskedBn(backend, opts)));
    console.error(`${backend} Batch Renormalization and Ghost BatchNorm…`);
    all.push(...(await measureRenormGhost(backend, opts, args.quick)));
    console.error(`${backend} GroupNorm / RMSNorm…`);
    all.push(...(await measureNorms(backend, opts, args.quick)));
    const bnMlp = mlp(() => dn.layers.batchNorm());
    all.push(
      await measureFold(backend, 'MLP 784-512-512-10 + BN, batch 128', bnMlp, mlpBatch.x, opts),
    );
    bnMlp.dispose();
    const cnnBatch = inputs([32, 28, 28, 1], 3);
    if (!args.quick) {
      for (const pair of PAIRS.filter((p) => p.cnn)) {
        console.error(`${backend} CNN ${pair.name}…`);
        all.push(
          ...(await measurePair(backend, 'CNN conv16-conv32, batch 32', cnn, pair, cnnBatch, opts)),
        );
      }
    }
    const bnCnn = cnn(() => dn.layers.batchNorm());
    all.push(
      await measureFold(backend, 'CNN conv16-conv32 + BN, batch 32', bnCnn, cnnBatch.x, opts),
    );
    bnCnn.dispose();
    console.error(`${backend} exportForInference, MobileNetV2 224×224…`);
    all.push(...(await measureExport(backend, opts)));
    tf.dispose([mlpBatch.x, mlpBatch.y, cnnBatch.x, cnnBatch.y]);
  }
  const wasmTraining = args.only
    ? null
    : await measureWasmTraining({
        backends: args.backends.split(','),
        quick: args.quick,
        runs: opts.runs,
        warmup: opts.warmup,
        makeCnn: () => cnn(null),
      });
  const seconds = (Date.now() - t0) / 1000;

  const ms = (v: number) => fmt(v, 3);
  const header = [
    'backend',
    'model',
    'pair',
    'measured',
    'pack / folded / masked ms (IQR)',
    'built-in / unfolded / unmasked ms (IQR)',
    'ratio',
    'target',
    'met',
  ];
  const rows = all.map((m) => [
    m.backend,
    m.model,
    m.pair,
    m.kind,
    `${ms(m.result.a.median)} (${ms(m.result.a.q1)}–${ms(m.result.a.q3)})`,
    `${ms(m.result.b.median)} (${ms(m.result.b.q1)}–${ms(m.result.b.q3)})`,
    m.result.ratio.toFixed(3),
    m.target === null ? '–' : `≤ ${m.target.toFixed(2)}`,
    m.target === null ? '–' : m.result.ratio <= m.target ? 'yes' : 'NO',
  ]);
  console.log(formatTable(header, rows));
  if (wasmTraining) console.log('\n' + formatTable(wasmTraining.header, wasmTraining.rows));
  const missed = all.filter((m) => m.target !== null && m.result.ratio > m.target);
  const missedLines = [
    ...missed.map(
      (m) =>
        `- ${m.backend}, ${m.model}, ${m.pair} (${m.kind}): ratio ${m.result.ratio.toFixed(3)} > ${m.target!.toFixed(2)}`,
    ),
    ...(wasmTraining?.missed ?? []).map((line) => `- ${line}`),
  ];
  const cpu = os.cpus();
  const md = [
    '# Benchmarks',
    '',
    'Generated by `npm run bench`' +
      (args.quick ? ' `--quick`' : '') +
      '. Medians of interleaved A/B runs (A and B alternate, which goes first alternates too)',
    `after ${opts.warmup} warm-up run(s), ${opts.runs} measured runs each; IQR = interquartile range. Ratio = median(pack, folded or masked) / median(built-in, unfolded or unmasked).`,
    '',
    `- machine: ${cpu[0]?.model ?? 'unknown'} × ${cpu.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}`,
    `- Node ${process.version}, tfjs ${tf.version.tfjs}, backends: ${args.backends}`,
    `- date: ${new Date().toISOString().slice(0, 10)}, total time ${seconds.toFixed(0)} s`,
    '',
    markdownTable(header, rows),
    '',
    ...(wasmTraining
      ? [
          wasmTraining.title,
          '',
          markdownTable(wasmTraining.header, wasmTraining.rows),
          '',
          ...wasmTraining.notes,
          '',
        ]
      : []),
    '## Targets',
    '',
    missedLines.length === 0
      ? 'Every target was met in this run.'
      : ['Missed in this run:', '', ...missedLines].join('\n'),
    '',
  ].join('\n');
  if (args.only) {
    // A partial run prints its rows only: BENCHMARKS.md and the JSON stay those of a full run.
    console.log(
      `\n${all.length} measurements (--only ${args.only}), ${missedLines.length} missed targets`,
    );
    return;
  }
  fs.writeFileSync(path.resolve(args.out), md + keptNotes(path.resolve(args.out)));
  fs.mkdirSync(path.dirname(path.resolve(args.json)), { recursive: true });
  fs.writeFileSync(
    path.resolve(args.json),
    toJson({ seconds, opts, measurements: all, wasmTraining: wasmTraining?.json ?? null }),
  );
  console.log(
    `\n${all.length} measurements, ${missedLines.length} missed targets, ${seconds.toFixed(0)} s → ${args.out}`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
