/**
 * Why the running variance matters. A BatchNorm normalizes with batch statistics in training and
 * with its running statistics at inference, so the running variance should estimate the population
 * variance. With m elements per channel a batch's biased variance has expectation (m−1)/m·σ²: at
 * batch size 2 the built-in's running variance is half the truth.
 *
 * 1. On a known distribution (N(μ_c, σ_c²) per channel) and on real MNIST digits (a fixed random
 *    projection of the pixels to 16 features), at batch sizes 2, 4, 8, 32: the running variance
 *    under the built-in `tf.layers.batchNormalization`, the pack's 'biased', 'unbiased' and
 *    cumulative (momentum null), and `recalibrateBatchNorm`, divided by the true population
 *    variance (1 is right).
 * 2. A small MNIST MLP (Dense → BN → ReLU → Dense) trained with each batch size under each variant:
 *    held-out loss and accuracy.
 *
 *   npm run experiment:bn-statistics -- [--quick] [--backend cpu|wasm] [--out reports/bn-statistics]
 *
 * Writes a console table, <out>/report.md, <out>/results.json and SVG charts.
 */
import * as tf from '@tensorflow/tfjs';
import { layers as dn, mixSeed, recalibrateBatchNorm } from 'tfjs-dropnorm';
import { useBackend } from '../lib/backend';
import { barChart } from '../lib/charts';
import { parseArgs } from '../lib/cli';
import { mnistSplit, toTensors } from '../lib/mnist';
import { poolFlags } from '../lib/options';
import { SEED_PURPOSE } from '../lib/random';
import { fmt, formatTable, fromJson, markdownTable, pct, toJson, writeReport } from '../lib/report';
import {
  OnProgress,
  PickBackend,
  runExperimentTasks,
  serveExperimentWorker,
  TaskRunner,
} from '../lib/tasks';
import { compare, meanStd, showInterval, stat } from '../lib/stats';

const DEFAULTS = {
  quick: false,
  backend: '',
  out: 'reports/bn-statistics',
  seeds: 3,
  firstSeed: 7,
  steps: 3000,
  trainPerClass: 200,
  heldOutPerClass: 100,
  epochs: 2,
  /** Worker processes (a seed's variance and MLP parts are the tasks). */
  jobs: poolFlags('').jobs,
  /** Internal: run as a pool worker. */
  worker: false,
};

function parseOptions(argv: readonly string[]): typeof DEFAULTS {
  const args = parseArgs(DEFAULTS, argv, {
    usage: 'npm run experiment:bn-statistics -- [--quick] [--backend cpu|wasm]',
  });
  if (args.quick) {
    args.steps = Math.min(args.steps, 800);
    args.trainPerClass = Math.min(args.trainPerClass, 60);
    args.heldOutPerClass = Math.min(args.heldOutPerClass, 50);
    args.epochs = 1;
    if (!argv.some((a) => /^--seeds(=|$)/.test(a))) args.seeds = 1;
  }
  if (!Number.isInteger(args.seeds) || args.seeds < 1) {
    throw new Error(`bn-statistics: expected --seeds an integer ≥ 1, received: ${args.seeds}.`);
  }
  return args;
}

const BATCH_SIZES = [2, 4, 8, 32];
const VARIANTS = ['built-in', 'biased', 'unbiased', 'cumulative', 'recalibrated'] as const;
type Variant = (typeof VARIANTS)[number];

/** A BN of the variant ('recalibrated' trains as 'unbiased' and is recalibrated afterwards). */
function batchNormOf(variant: Variant, inputShape?: number[]): tf.layers.Layer {
  const shape = inputShape ? { inputShape } : {};
  switch (variant) {
    case 'built-in':
      return tf.layers.batchNormalization({ momentum: 0.99, ...shape });
    case 'biased':
      return dn.batchNorm({ momentum: 0.99, varianceCorrection: 'biased', ...shape });
    case 'cumulative':
      return dn.batchNorm({ momentum: null, ...shape });
    default:
      return dn.batchNorm({ momentum: 0.99, ...shape });
  }
}

/** The BN's running variance, per channel. */
function movingVariance(layer: tf.layers.Layer): Float32Array {
  const w = layer.getWeights();
  const config = layer.getConfig();
  const index = (config.scale !== false ? 1 : 0) + (config.center !== false ? 1 : 0) + 1;
  return w[index].dataSync() as Float32Array;
}

/**
 * Feeds `steps` batches of `batchSize` rows (drawn by `batch(step, size)`) through one BN of each
 * variant in training mode and returns running variance / true variance per channel, per variant.
 */
async function varianceRatios(
  batch: (step: number, size: number) => tf.Tensor2D,
  trueVariance: Float64Array,
  batchSize: number,
  steps: number,
): Promise<Record<Variant, number[]>> {
  const channels = trueVariance.length;
  const models = VARIANTS.map((v) => tf.sequential({ layers: [batchNormOf(v, [channels])] }));
  const seen: tf.Tensor2D[] = [];
  for (let step = 0; step < steps; step++) {
    const x = batch(step, batchSize);
    for (const model of models) {
      tf.dispose(model.layers[0].apply(x, { training: true }) as tf.Tensor);
    }
    seen.push(x);
  }
  // Recalibration: exact statistics of everything the layers saw.
  const all = tf.concat(seen) as tf.Tensor2D;
  tf.dispose(seen);
  await recalibrateBatchNorm(models[VARIANTS.indexOf('recalibrated')], all, { batchSize: 1024 });
  all.dispose();
  const result = {} as Record<Variant, number[]>;
  VARIANTS.forEach((v, i) => {
    const running = movingVariance(models[i].layers[0]);
    result[v] = Array.from(trueVariance, (t, c) => running[c] / t);
  });
  models.forEach((m) => m.dispose());
  return result;
}

/** Population variance per column (float64, two passes; divides by n, the population's own size). */
function populationVariance(x: Float32Array, rows: number, cols: number): Float64Array {
  const mean = new Float64Array(cols);
  const variance = new Float64Array(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) mean[c] += x[r * cols + c] / rows;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) variance[c] += (x[r * cols + c] - mean[c]) ** 2 / rows;
  }
  return variance;
}

interface RatioCell {
  source: string;
  batchSize: number;
  variant: Variant;
  /** Per seed: mean over channels; over seeds: the mean of those. */
  mean: number;
  /** Per seed: std over channels; over seeds: std of the per-seed means. */
  std: number;
  /** Over seeds: the per-seed means. */
  values?: number[];
}

interface TrainCell {
  batchSize: number;
  variant: Variant;
  loss: number;
  accuracy: number;
  accuracyStd?: number;
  accuracies?: number[];
}

/**
 * Paired comparisons over seeds (a seed fixes the data, the projection and the initial weights):
 * per batch size on MNIST features, |1 − ratio| of 'unbiased' and of recalibration against the
 * built-in's, and the MLP's held-out accuracy of recalibrated 'unbiased' against the built-in.
 */
function compareVariants(ratios: RatioCell[], training: TrainCell[]): string[][] {
  const rows: string[][] = [];
  const show = (c: ReturnType<typeof compare>) =>
    c.singleSeed
      ? `${fmt(c.delta)} (one seed)`
      : `${fmt(c.delta)} ${showInterval(c.ci)} ${c.verdict === 'not separated' ? 'not separated' : c.verdict === 'better' ? '**closer / higher**' : '**farther / lower**'}`;
  for (const b of BATCH_SIZES) {
    const cell = (v: Variant) =>
      ratios.find((r) => r.source === 'MNIST' && r.variant === v && r.batchSize === b)!;
    const dist = (v: Variant) =>
      stat((cell(v).values ?? [cell(v).mean]).map((x) => Math.abs(1 - x)));
    const acc = (v: Variant) => {
      const t = training.find((x) => x.variant === v && x.batchSize === b)!;
      return stat(t.accuracies ?? [t.accuracy]);
    };
    rows.push([
      `batch ${b}`,
      show(compare(dist('unbiased'), dist('built-in'), 'lower')),
      show(compare(dist('recalibrated'), dist('built-in'), 'lower')),
      show(compare(acc('recalibrated'), acc('built-in'), 'higher')),
    ]);
  }
  return rows;
}

function mlp(variant: Variant, seed: number): tf.LayersModel {
  const init = (k: number) => mixSeed(seed, SEED_PURPOSE.init, k);
  return tf.sequential({
    layers: [
      tf.layers.dense({
        inputShape: [784],
        units: 64,
        useBias: false,
        kernelInitializer: tf.initializers.heNormal({ seed: init(0) }),
      }),
      batchNormOf(variant),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.dense({
        units: 10,
        activation: 'softmax',
        kernelInitializer: tf.initializers.glorotUniform({ seed: init(1) }),
      }),
    ],
  });
}

type Options = typeof DEFAULTS;
const CHANNELS = 8;
const FEATURES = 16;

/** One seed's running-variance cells: the known distribution, then MNIST features. */
async function varianceTask(
  args: Options,
  seed: number,
  onProgress: OnProgress,
): Promise<RatioCell[]> {
  const ratios: RatioCell[] = [];
  // 1a. Known distribution: channel c ~ N(c − 4, σ_c²), σ_c = 0.5 + 0.5·c.
  const sigma = Array.from({ length: CHANNELS }, (_, c) => 0.5 + 0.5 * c);
  const mu = tf.tensor1d(sigma.map((_, c) => c - 4));
  const sd = tf.tensor1d(sigma);
  const known = (step: number, size: number) =>
    tf.tidy(() =>
      tf.add(
        tf.mul(
          tf.randomNormal(
            [size, CHANNELS],
            0,
            1,
            'float32',
            mixSeed(seed, SEED_PURPOSE.data, step),
          ),
          sd,
        ),
        mu,
      ),
    ) as tf.Tensor2D;
  const knownVariance = Float64Array.from(sigma, (s) => s * s);
  for (const b of BATCH_SIZES) {
    onProgress(0, `running variance, N(μ, σ²), batch ${b}`);
    const r = await varianceRatios(known, knownVariance, b, args.steps);
    for (const v of VARIANTS)
      ratios.push({ source: 'N(μ, σ²)', batchSize: b, variant: v, ...stats(r[v]) });
    onProgress(1, '');
  }

  // 1b. MNIST: a fixed random projection of the training digits to 16 features.
  const { train } = mnistSplit({
    trainPerClass: args.trainPerClass,
    heldOutPerClass: args.heldOutPerClass,
    seed: seed,
  });
  const trainT = toTensors(train);
  const projected = tf.tidy(() =>
    tf.matMul(
      trainT.xs,
      tf.randomNormal(
        [784, FEATURES],
        0,
        1 / Math.sqrt(784),
        'float32',
        mixSeed(seed, SEED_PURPOSE.init),
      ),
    ),
  ) as tf.Tensor2D;
  const mnistVariance = populationVariance(projected.dataSync() as Float32Array, train.n, FEATURES);
  // Batches walk through the digits in a fixed order and wrap around (population = all of them).
  const mnistBatch = (step: number, size: number) =>
    tf.tidy(() => {
      const start = (step * size) % train.n;
      const idx = tf.tensor1d(
        Array.from({ length: size }, (_, i) => (start + i) % train.n),
        'int32',
      );
      return tf.gather(projected, idx);
    }) as tf.Tensor2D;
  for (const b of BATCH_SIZES) {
    onProgress(0, `running variance, MNIST features, batch ${b}`);
    const steps = Math.max(args.steps, Math.ceil(train.n / b));
    const r = await varianceRatios(mnistBatch, mnistVariance, b, steps);
    for (const v of VARIANTS)
      ratios.push({ source: 'MNIST', batchSize: b, variant: v, ...stats(r[v]) });
    onProgress(1, '');
  }

  tf.dispose([mu, sd, trainT.xs, trainT.ys, projected]);
  return ratios;
}

/** One seed's MLP cells: held-out loss and accuracy under each variant and batch size. */
async function mlpTask(args: Options, seed: number, onProgress: OnProgress): Promise<TrainCell[]> {
  const training: TrainCell[] = [];
  const { train, heldOut } = mnistSplit({
    trainPerClass: args.trainPerClass,
    heldOutPerClass: args.heldOutPerClass,
    seed: seed,
  });
  const trainT = toTensors(train);
  const testT = toTensors(heldOut);
  // 2. Held-out loss and accuracy of an MLP trained with small batches under each variant.
  for (const b of BATCH_SIZES) {
    for (const variant of VARIANTS.filter((v) => v !== 'recalibrated')) {
      onProgress(0, `MLP, ${variant}, batch ${b}`);
      const model = mlp(variant, seed);
      model.compile({
        optimizer: tf.train.adam(3e-3),
        loss: 'categoricalCrossentropy',
        metrics: ['acc'],
      });
      await model.fit(trainT.xs, trainT.ys, {
        epochs: args.epochs,
        batchSize: b,
        shuffle: false,
        verbose: 0,
        // The default yields to the event loop after every batch: a large share of a small
        // MLP's step at batch 2.
        yieldEvery: 'never',
      });
      const evaluate = () => {
        const [loss, acc] = model.evaluate(testT.xs, testT.ys, { batchSize: 256 }) as tf.Scalar[];
        const out = { loss: loss.dataSync()[0], accuracy: acc.dataSync()[0] };
        tf.dispose([loss, acc]);
        return out;
      };
      training.push({ batchSize: b, variant, ...evaluate() });
      if (variant === 'unbiased') {
        await recalibrateBatchNorm(model, trainT.xs, { batchSize: 256 });
        training.push({ batchSize: b, variant: 'recalibrated', ...evaluate() });
      }
      model.dispose();
      onProgress(1, '');
    }
  }
  tf.dispose([trainT.xs, trainT.ys, testT.xs, testT.ys]);
  return training;
}

/** A seed's two parts, each a pool task; results are {@link toJson} text (NaN survives IPC). */
function taskRunner(args: Options): TaskRunner<string> {
  return {
    run: async (task, onProgress) =>
      toJson(
        task.config === 'variance'
          ? await varianceTask(args, task.seed, onProgress)
          : await mlpTask(args, task.seed, onProgress),
      ),
    dispose: () => {},
  };
}

async function main(): Promise<void> {
  const args = parseOptions(process.argv.slice(2));
  const pickBackend: PickBackend = (log) => useBackend(args.backend, log);
  if (args.worker) return serveExperimentWorker(pickBackend, () => taskRunner(args));
  const seeds = Array.from({ length: args.seeds }, (_, k) => args.firstSeed + k);
  const channels = CHANNELS;
  const features = FEATURES;
  const tasks = seeds.flatMap((seed) => ['variance', 'mlp'].map((config) => ({ seed, config })));
  const outcome = await runExperimentTasks<string>({
    label: 'bn-statistics',
    jobs: args.jobs,
    tasks,
    // 4 variance cells, or 4 × 3 MLP cells: 10 on average.
    unitsPerTask: BATCH_SIZES.length * 2.5,
    pickBackend,
    createRunner: () => taskRunner(args),
    doneLine: (task) => `seed ${task.seed} ${task.config} done`,
  });
  const backend = outcome.backend;
  const part = <T>(config: string): T[] =>
    outcome.results.filter((_, i) => tasks[i].config === config).map((json) => fromJson<T>(json));
  const perSeedRatios = part<RatioCell[]>('variance');
  const perSeedTraining = part<TrainCell[]>('mlp');
  const { train, heldOut } = mnistSplit({
    trainPerClass: args.trainPerClass,
    heldOutPerClass: args.heldOutPerClass,
    seed: args.firstSeed,
  });
  const nTrain = train.n;
  const nHeldOut = heldOut.n;

  // Over seeds: each cell's mean over channels per seed, then mean ± std over seeds.
  const ratios: RatioCell[] = perSeedRatios[0].map((cell, i) => {
    const values = perSeedRatios.map((r) => r[i].mean);
    return { ...cell, ...stats(values), values };
  });
  const training: TrainCell[] = perSeedTraining[0].map((cell, i) => {
    const accuracies = perSeedTraining.map((t) => t[i].accuracy);
    return {
      ...cell,
      loss: stats(perSeedTraining.map((t) => t[i].loss)).mean,
      accuracy: stats(accuracies).mean,
      accuracyStd: stats(accuracies).std,
      accuracies,
    };
  });
  const comparisons = compareVariants(ratios, training);

  // Tables.
  const ratioHeader = ['running σ² / true σ²', ...BATCH_SIZES.map((b) => `batch ${b}`)];
  const ratioRows = (source: string) =>
    VARIANTS.map((v) => [
      v,
      ...BATCH_SIZES.map((b) => {
        const cell = ratios.find(
          (r) => r.source === source && r.variant === v && r.batchSize === b,
        )!;
        return `${fmt(cell.mean)} ± ${fmt(cell.std, 2)}`;
      }),
    ]);
  const trainHeader = ['held-out loss / acc', ...BATCH_SIZES.map((b) => `batch ${b}`)];
  const trainRows = VARIANTS.map((v) => [
    v,
    ...BATCH_SIZES.map((b) => {
      const cell = training.find((t) => t.variant === v && t.batchSize === b)!;
      return `${fmt(cell.loss)} / ${pct(cell.accuracy)}${seeds.length > 1 ? ` ± ${pct(cell.accuracyStd ?? 0)}` : ''}`;
    }),
  ]);
  const blocks: [string, string[], (string | number)[][]][] = [
    [
      `Known distribution N(μ_c, σ_c²), ${channels} channels, ${args.steps} steps`,
      ratioHeader,
      ratioRows('N(μ, σ²)'),
    ],
    [`MNIST (${nTrain} digits projected to ${features} features)`, ratioHeader, ratioRows('MNIST')],
    [
      `MLP on MNIST: ${nTrain} training, ${nHeldOut} held-out digits, ${args.epochs} epoch(s)`,
      trainHeader,
      trainRows,
    ],
  ];
  for (const [title, header, rows] of blocks) {
    console.log(`\n${title}\n${formatTable(header, rows)}`);
  }

  const md = [
    `# BatchNorm running statistics (backend ${backend}, tfjs ${tf.version.tfjs})`,
    '',
    `Over ${seeds.length} seed(s) (${seeds.join(', ')}; a seed fixes the data, the MNIST split and projection and`,
    'the initial weights). Running variance divided by the true population variance: per seed the mean',
    'over channels, then mean ± std over seeds (1 is right), after training-mode updates with momentum 0.99 (cumulative: momentum null). The',
    "built-in and 'biased' feed the batch's biased variance, whose expectation is (m−1)/m·σ²;",
    "'unbiased' and cumulative feed m/(m−1)·σ²_B; recalibrated is the exact population variance of",
    'the data seen (`recalibrateBatchNorm`).',
    '',
    ...blocks.flatMap(([title, header, rows]) => [
      `## ${title}`,
      '',
      markdownTable(header, rows),
      '',
    ]),
    `## Paired comparisons over ${seeds.length} seeds (95% paired t intervals), MNIST`,
    '',
    'Δ|1 − ratio| against the built-in (negative: closer to the true variance), and Δ held-out accuracy of',
    'the MLP (recalibrated \'unbiased\' − built-in); "not separated" where the interval contains 0.',
    '',
    markdownTable(
      [
        'batch',
        "Δ|1 − ratio|, 'unbiased' − built-in",
        'Δ|1 − ratio|, recalibrated − built-in',
        'Δ accuracy, recalibrated − built-in',
      ],
      comparisons,
    ),
    '',
    '![variance ratio, known distribution](ratio-known.svg)',
    '![variance ratio, MNIST](ratio-mnist.svg)',
    '![held-out accuracy](heldout-accuracy.svg)',
    '',
  ].join('\n');
  const chart = (source: string, title: string) =>
    barChart(
      ratios
        .filter((r) => r.source === source)
        .map((r) => ({
          category: `batch ${r.batchSize}`,
          group: r.variant,
          value: r.mean,
          error: r.std,
        })),
      { title, yTitle: 'running σ² / true σ²' },
    );
  const files = await writeReport(args.out, {
    markdown: md,
    results: {
      backend,
      tfjs: tf.version.tfjs,
      args,
      seeds,
      ratios,
      training,
      perSeedRatios,
      perSeedTraining,
    },
    charts: {
      'ratio-known': chart('N(μ, σ²)', 'Running variance / true variance, N(μ, σ²)'),
      'ratio-mnist': chart('MNIST', 'Running variance / true variance, MNIST features'),
      'heldout-accuracy': barChart(
        training.map((t) => ({
          category: `batch ${t.batchSize}`,
          group: t.variant,
          value: t.accuracy,
        })),
        { title: 'Held-out accuracy of the MNIST MLP', yTitle: 'accuracy' },
      ),
    },
  });
  console.log(`\nreport: ${files.markdown}`);
}

function stats(values: number[]): { mean: number; std: number } {
  const { mean, std } = meanStd(values);
  return { mean, std };
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
