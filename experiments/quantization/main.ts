/**
 * Quantized export after folding: error against bytes of `saveForInference`'s modes on two
 * MobileNetV2 models, against each model's float export (`exportForInference`).
 *
 *   npm run experiment:quantization -- [--quick] [--backend cpu|wasm] [--out reports/quantization]
 *
 * Models (models.ts): nsfwjs's pretrained Keras MobileNetV2 (224×224, 5 classes; its weights ship
 * uint8-quantized per tensor, so the reference is its own dequantized float model), and a
 * small MobileNetV2-shaped model (28×28, models.ts) trained here on MNIST with BatchNorm, its statistics
 * recalibrated on training digits, BN folded by the export.
 * Inputs: no npm package ships natural test images we could find, so the pretrained model sees MNIST
 * digits resized to 224×224 and tinted with seeded colours (a weak stand-in: the outputs spread over
 * the classes less than on photos); the trained model sees held-out MNIST digits. Calibration inputs
 * and test inputs are disjoint.
 * Modes: float16, uint16, and uint8 four ways — naive (every folded weight per tensor), +
 * equalization, + bias correction (calibration), + per-weight precision (the default 'uint8' with
 * calibration). Metrics on the test inputs: bytes / float32 bytes, mean total-variation distance of
 * the class probabilities, top-1 agreement, relative logit error ‖ẑ − z‖/‖z‖ (logits: the softmax
 * layer set to linear in both models).
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import {
  SaveForInferenceOptions,
  SaveForInferenceResult,
  exportForInference,
  layers as dnLayers,
  mixSeed,
  recalibrateBatchNorm,
  saveForInference,
} from 'tfjs-dropnorm';
import { useBackend } from '../lib/backend';
import { writeChart } from '../lib/charts';
import { parseArgs } from '../lib/cli';
import { mnistSplit } from '../lib/mnist';
import { SEED_PURPOSE, mulberry32, withSeededMathRandom } from '../lib/random';
import { fmt, markdownTable, pct, writeMarkdown, writeResults } from '../lib/report';
import { bootstrapInterval, LEVEL, showInterval } from '../lib/stats';
import { capture, loadNsfwMobileNetV2, smallMobileNetV2 } from './models';

void dnLayers;

const DEFAULTS = {
  quick: false,
  backend: '',
  out: 'reports/quantization',
  seed: 1,
  calibration: 16,
  test: 48,
  trainPerClass: 150,
  epochs: 2,
  batch: 32,
};

type Args = typeof DEFAULTS;

/** A mode of the experiment: its label and saveForInference's options (calibration added later). */
interface Mode {
  id: string;
  label: string;
  options: SaveForInferenceOptions;
  calibrate: boolean;
}

const MODES: Mode[] = [
  { id: 'float16', label: 'float16', options: { quantize: 'float16' }, calibrate: false },
  { id: 'uint16', label: 'uint16', options: { quantize: 'uint16' }, calibrate: false },
  {
    id: 'uint8-naive',
    label: 'uint8 naive (per tensor)',
    options: { quantize: 'uint8', equalize: false, precision: 'uniform' },
    calibrate: false,
  },
  {
    id: 'uint8-eq',
    label: 'uint8 + equalization',
    options: { quantize: 'uint8', precision: 'uniform' },
    calibrate: false,
  },
  {
    id: 'uint8-eq-bc',
    label: 'uint8 + equalization + bias correction',
    options: { quantize: 'uint8', precision: 'uniform' },
    calibrate: true,
  },
  {
    id: 'uint8-mixed-nocal',
    label: 'uint8 + equalization + per-weight precision (no calibration)',
    options: { quantize: 'uint8' },
    calibrate: false,
  },
  {
    id: 'uint8',
    label: "uint8 + equalization + bias correction + per-weight precision ('uint8' default)",
    options: { quantize: 'uint8' },
    calibrate: true,
  },
];

interface Measured {
  model: string;
  mode: string;
  label: string;
  ratio: number;
  bytes: number;
  totalVariation: number;
  /** Total variation of each test input (its mean is `totalVariation`): the paired comparisons. */
  tvPerInput: number[];
  top1Agreement: number;
  logitError: number;
  seconds: number;
  equalized: number;
  biasCorrected: number;
  dtypes: Record<string, number>;
}

/** The same artifacts with the softmax of the output layer set to linear: the model's logits. */
function logitsArtifacts(artifacts: tf.io.ModelArtifacts): tf.io.ModelArtifacts {
  const topology = JSON.parse(JSON.stringify(artifacts.modelTopology)) as {
    model_config?: { config: { layers: { config: Record<string, unknown> }[] } };
    config?: { layers: { config: Record<string, unknown> }[] };
  };
  const layers = (topology.model_config?.config ?? topology.config)!.layers;
  const last = layers[layers.length - 1].config;
  if (last.activation !== 'softmax') throw new Error('expected a softmax output layer');
  last.activation = 'linear';
  return { ...artifacts, modelTopology: topology };
}

async function predictAll(model: tf.LayersModel, x: tf.Tensor, batch = 16): Promise<Float32Array> {
  const parts: Float32Array[] = [];
  for (let i = 0; i < x.shape[0]; i += batch) {
    const slice = x.slice(i, Math.min(batch, x.shape[0] - i));
    const y = model.predict(slice) as tf.Tensor;
    parts.push((await y.data()) as Float32Array);
    tf.dispose([slice, y]);
  }
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Logits and probabilities of the model saved as `artifacts`, on `x`: one forward pass of its
 * logits model, the softmax taken here (in float64) rather than by a second pass.
 */
async function outputsOf(
  artifacts: tf.io.ModelArtifacts,
  x: tf.Tensor,
  classes: number,
): Promise<{ p: Float32Array; z: Float32Array }> {
  const m = await tf.loadLayersModel(tf.io.fromMemory(logitsArtifacts(artifacts)));
  try {
    const z = await predictAll(m, x);
    const p = new Float32Array(z.length);
    for (let r = 0; r < z.length / classes; r++) {
      const row = z.subarray(r * classes, (r + 1) * classes);
      const max = Math.max(...row);
      const e = Array.from(row, (v) => Math.exp(v - max));
      const sum = e.reduce((a, b) => a + b, 0);
      e.forEach((v, j) => (p[r * classes + j] = v / sum));
    }
    return { p, z };
  } finally {
    m.dispose();
  }
}

function compare(
  ref: { p: Float32Array; z: Float32Array },
  q: { p: Float32Array; z: Float32Array },
  classes: number,
): { totalVariation: number; tvPerInput: number[]; top1Agreement: number; logitError: number } {
  const n = ref.p.length / classes;
  let tv = 0;
  const tvPerInput: number[] = [];
  let agree = 0;
  for (let r = 0; r < n; r++) {
    let [a, b, d] = [0, 0, 0];
    for (let j = 0; j < classes; j++) {
      d += Math.abs(ref.p[r * classes + j] - q.p[r * classes + j]);
      if (ref.p[r * classes + j] > ref.p[r * classes + a]) a = j;
      if (q.p[r * classes + j] > q.p[r * classes + b]) b = j;
    }
    tv += d / 2;
    tvPerInput.push(d / 2);
    if (a === b) agree++;
  }
  // Logits are defined up to a per-sample shift (softmax ignores it): compare them centred.
  let diff = 0;
  let norm = 0;
  for (let r = 0; r < n; r++) {
    let [mr, mq] = [0, 0];
    for (let j = 0; j < classes; j++) {
      mr += ref.z[r * classes + j] / classes;
      mq += q.z[r * classes + j] / classes;
    }
    for (let j = 0; j < classes; j++) {
      const zr = ref.z[r * classes + j] - mr;
      const zq = q.z[r * classes + j] - mq;
      diff += (zq - zr) ** 2;
      norm += zr ** 2;
    }
  }
  return {
    totalVariation: tv / n,
    tvPerInput,
    top1Agreement: agree / n,
    logitError: Math.sqrt(diff / norm),
  };
}

/** MNIST digits as [n, size, size, 3] images in [0, 1], tinted with seeded colours when `tint`. */
function digitImages(xs: Float32Array, n: number, size: number, seed: number, tint: boolean) {
  const random = mulberry32(seed);
  return tf.tidy(() => {
    const gray = tf.image.resizeBilinear(tf.tensor4d(xs.subarray(0, n * 784), [n, 28, 28, 1]), [
      size,
      size,
    ]);
    if (!tint) return tf.tile(gray, [1, 1, 1, 3]);
    const colour = () => tf.tensor4d(Array.from({ length: n * 3 }, random), [n, 1, 1, 3]);
    const [ink, paper] = [colour(), colour()];
    return tf.add(tf.mul(gray, ink), tf.mul(tf.sub(1, gray), paper));
  });
}

/** A small MobileNetV2 trained on MNIST here, BN statistics recalibrated on the training digits. */
async function trainedMobileNet(args: Args, log: (s: string) => void) {
  const split = mnistSplit({
    trainPerClass: args.trainPerClass,
    heldOutPerClass: Math.ceil((args.calibration + args.test) / 10) + 1,
    seed: args.seed,
  });
  const model = smallMobileNetV2(args.seed);
  const x = tf.tensor4d(split.train.xs, [split.train.n, 28, 28, 1]);
  const y = tf.tensor2d(split.train.ys, [split.train.n, 10]);
  model.compile({
    optimizer: tf.train.adam(3e-3),
    loss: 'categoricalCrossentropy',
    metrics: ['acc'],
  });
  const t0 = Date.now();
  // fit's shuffle and the built-in Dropout's masks draw from Math.random: seeded, the run repeats.
  const h = await withSeededMathRandom(mixSeed(args.seed, SEED_PURPOSE.mathRandom), () =>
    model.fit(x, y, { epochs: args.epochs, batchSize: args.batch, shuffle: true, verbose: 0 }),
  );
  await recalibrateBatchNorm(model, x);
  const heldOut = tf.tensor4d(split.heldOut.xs, [split.heldOut.n, 28, 28, 1]);
  const acc = tf.tidy(() =>
    tf
      .mean(
        tf.equal(
          tf.argMax(model.predict(heldOut) as tf.Tensor, -1),
          tf.tensor1d(split.heldOut.labels, 'int32'),
        ),
      )
      .arraySync(),
  ) as number;
  log(
    `trained a small MobileNetV2 on ${split.train.n} digits in ${((Date.now() - t0) / 1000).toFixed(0)} s: ` +
      `train acc ${pct(h.history.acc.at(-1) as number)}, held-out acc ${pct(acc)}`,
  );
  tf.dispose([x, y]);
  const calibration = heldOut.slice(0, args.calibration);
  const test = heldOut.slice(args.calibration, args.test);
  heldOut.dispose();
  return { model, calibration, test, heldOutAccuracy: acc, classes: 10 };
}

async function pretrainedMobileNet(args: Args) {
  const model = await loadNsfwMobileNetV2();
  const split = mnistSplit({
    trainPerClass: 0,
    heldOutPerClass: Math.ceil((args.calibration + args.test) / 10),
    seed: args.seed + 1,
  });
  const images = digitImages(split.heldOut.xs, args.calibration + args.test, 224, args.seed, true);
  const calibration = images.slice(0, args.calibration);
  const test = images.slice(args.calibration, args.test);
  images.dispose();
  return { model, calibration, test, classes: 5 };
}

async function measure(
  name: string,
  setup: { model: tf.LayersModel; calibration: tf.Tensor; test: tf.Tensor; classes: number },
  log: (s: string) => void,
): Promise<{ rows: Measured[]; reports: Record<string, SaveForInferenceResult> }> {
  const exported = exportForInference(setup.model);
  const floatCapture = capture();
  await exported.model.save(floatCapture.handler);
  exported.model.dispose();
  const ref = await outputsOf(floatCapture.get(), setup.test, setup.classes);
  const rows: Measured[] = [];
  const reports: Record<string, SaveForInferenceResult> = {};
  for (const mode of MODES) {
    const c = capture();
    const t0 = Date.now();
    const report = await saveForInference(setup.model, c.handler, {
      ...mode.options,
      ...(mode.calibrate ? { calibration: setup.calibration } : {}),
    });
    const seconds = (Date.now() - t0) / 1000;
    const q = await outputsOf(c.get(), setup.test, setup.classes);
    const dtypes: Record<string, number> = {};
    for (const w of report.weights) dtypes[w.dtype] = (dtypes[w.dtype] ?? 0) + 1;
    const row: Measured = {
      model: name,
      mode: mode.id,
      label: mode.label,
      ratio: report.ratio,
      bytes: report.bytes,
      ...compare(ref, q, setup.classes),
      seconds,
      equalized: report.equalized.length,
      biasCorrected: report.biasCorrected.length,
      dtypes,
    };
    rows.push(row);
    reports[mode.id] = { ...report, weights: report.weights.slice(0, 0) };
    log(
      `${name} ${mode.id}: ${fmt(row.ratio)}× bytes, TV ${fmt(row.totalVariation, 4)}, top-1 ${pct(row.top1Agreement)}, logit error ${fmt(row.logitError, 4)} (${seconds.toFixed(1)} s)`,
    );
  }
  return { rows, reports };
}

function chartSpec(rows: Measured[]) {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Quantized export: output error against size (test inputs, vs the float export)',
    background: 'white',
    width: 300,
    height: 260,
    data: { values: rows.map((r) => ({ ...r, tv: Math.max(r.totalVariation, 1e-5) })) },
    facet: { field: 'model', type: 'nominal', title: null },
    resolve: { scale: { y: 'independent' } },
    spec: {
      layer: [
        {
          mark: { type: 'point', filled: true, size: 70 },
          encoding: {
            x: {
              field: 'ratio',
              type: 'quantitative',
              title: 'bytes / float32 bytes',
              scale: { domain: [0.2, 0.55] },
            },
            y: {
              field: 'tv',
              type: 'quantitative',
              title: 'mean total-variation distance',
              scale: { type: 'log' },
            },
            color: { field: 'mode', type: 'nominal', title: null, scale: { scheme: 'tableau10' } },
            shape: { field: 'mode', type: 'nominal' },
          },
        },
      ],
    },
  };
}

/** The pairs of modes the report compares: what each step of the default pipeline buys. */
const PAIRS: [string, string][] = [
  ['uint8', 'uint8-naive'],
  ['uint8-eq', 'uint8-naive'],
  ['uint8-eq-bc', 'uint8-eq'],
  ['uint8', 'uint8-mixed-nocal'],
];
const RESAMPLES = 2000;

/**
 * mean TV of mode `a` / mean TV of mode `b` on the same test inputs, with a percentile bootstrap
 * interval over the inputs (Efron & Tibshirani 1993, ch. 13: resample input indices, recompute
 * both means on them): below 1 is `a` closer to the float model.
 */
function ratioOf(rows: Measured[], [a, b]: [string, string], seed: number) {
  const ra = rows.find((r) => r.mode === a)!;
  const rb = rows.find((r) => r.mode === b)!;
  const meanAt = (tv: number[], idx: number[]) => idx.reduce((s, i) => s + tv[i], 0) / idx.length;
  const ratioAt = (idx: number[]) => meanAt(ra.tvPerInput, idx) / meanAt(rb.tvPerInput, idx);
  const all = ra.tvPerInput.map((_, i) => i);
  const ci = bootstrapInterval(all, { seed, resamples: RESAMPLES, statistic: ratioAt });
  return {
    model: ra.model,
    mode: a,
    label: ra.label,
    against: b,
    againstLabel: rb.label,
    ratio: ratioAt(all),
    ci,
    verdict: ci[1] < 1 ? 'lower' : ci[0] > 1 ? 'higher' : 'not separated',
  };
}

async function main(): Promise<void> {
  const args = parseArgs(DEFAULTS, process.argv.slice(2), {
    usage: 'npm run experiment:quantization -- [--quick] [--backend cpu|wasm]',
  });
  if (args.quick) {
    args.calibration = 8;
    args.test = 16;
    args.trainPerClass = 60;
    args.epochs = 1;
  }
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const backend = await useBackend(args.backend, log, true);
  const started = Date.now();
  await tf.setBackend(backend);

  const trained = await trainedMobileNet(args, log);
  const a = await measure('small MobileNetV2 trained on MNIST', trained, log);
  tf.dispose([trained.calibration, trained.test]);
  trained.model.dispose();

  const pretrained = await pretrainedMobileNet(args);
  const b = await measure('nsfwjs MobileNetV2 (pretrained, 224×224)', pretrained, log);
  tf.dispose([pretrained.calibration, pretrained.test]);
  pretrained.model.dispose();

  const rows = [...a.rows, ...b.rows];
  const seconds = (Date.now() - started) / 1000;
  const goals = [a, b].map(({ rows: r }) => {
    const get = (id: string) => r.find((x) => x.mode === id)!;
    return {
      model: r[0].model,
      uint8Ratio: get('uint8').ratio,
      uint8VsNaive: get('uint8').totalVariation / get('uint8-naive').totalVariation,
      uint8Met:
        get('uint8').ratio <= 0.3 &&
        get('uint8').totalVariation <= 0.5 * get('uint8-naive').totalVariation,
      float16Ratio: get('float16').ratio,
      float16TV: get('float16').totalVariation,
      float16Met: get('float16').ratio <= 0.51 && get('float16').totalVariation <= 0.01,
    };
  });
  const comparisons = [a, b].flatMap(({ rows: r }) =>
    PAIRS.map((pair) => ratioOf(r, pair, args.seed)),
  );
  const out = args.out;
  writeResults(out, {
    args,
    backend,
    seconds,
    heldOutAccuracy: trained.heldOutAccuracy,
    rows,
    goals,
    comparisons,
    reports: { trained: a.reports, pretrained: b.reports },
  });
  const chart = await writeChart(
    path.join(out, 'quantization-error-vs-bytes.svg'),
    chartSpec(rows),
  );
  const table = markdownTable(
    ['model', 'mode', 'bytes / float32', 'mean TV', 'top-1 agreement', 'rel. logit error'],
    rows.map((r) => [
      r.model,
      r.label,
      fmt(r.ratio),
      fmt(r.totalVariation, 4),
      pct(r.top1Agreement),
      fmt(r.logitError, 4),
    ]),
  );
  const goalTable = markdownTable(
    [
      'model',
      "'uint8' bytes",
      "'uint8' TV / naive TV",
      'uint8 goal',
      "'float16' bytes",
      "'float16' TV",
      'float16 goal',
    ],
    goals.map((g) => [
      g.model,
      fmt(g.uint8Ratio),
      fmt(g.uint8VsNaive),
      g.uint8Met ? 'met' : 'missed',
      fmt(g.float16Ratio),
      fmt(g.float16TV, 4),
      g.float16Met ? 'met' : 'missed',
    ]),
  );
  writeMarkdown(
    out,
    [
      '# Quantized export after folding',
      '',
      `Backend ${backend}; ${args.calibration} calibration inputs, ${args.test} test inputs (disjoint); ${seconds.toFixed(0)} s.`,
      `The trained model reached ${pct(trained.heldOutAccuracy)} held-out accuracy.`,
      '',
      table,
      '',
      'Goals (issue 25): uint8 ≤ 0.30× bytes with at most half the naive uint8 TV; float16 ≤ 0.51× bytes and TV ≤ 0.01.',
      '',
      goalTable,
      '',
      `Paired comparisons over the ${args.test} test inputs: the ratio of mean TVs, with its ` +
        `${Math.round(LEVEL * 100)}% percentile bootstrap interval (${RESAMPLES} resamples of the ` +
        'inputs, both modes measured on the same resampled inputs); "not separated" where the ' +
        'interval contains 1.',
      '',
      markdownTable(
        ['model', 'mode', 'against', 'TV ratio', `${Math.round(LEVEL * 100)}% interval`, 'verdict'],
        comparisons.map((c) => [
          c.model,
          c.label,
          c.againstLabel,
          fmt(c.ratio),
          showInterval(c.ci),
          c.verdict,
        ]),
      ),
      '',
      `![error vs bytes](${path.basename(chart)})`,
      '',
    ].join('\n'),
  );
  log(`wrote ${out}/report.md (${seconds.toFixed(0)} s)`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
