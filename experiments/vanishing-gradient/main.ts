/**
 * Vanishing and exploding gradients in a deep MLP on real MNIST digits, and what helps.
 *
 * A `depth`-layer MLP (depth − 1 hidden Dense layers of `width` units and a 10-way softmax) is
 * trained with SGD + momentum under eleven configurations: sigmoid, tanh, relu, leaky relu, elu,
 * sigmoid + BatchNorm, relu + BatchNorm (the pack's BatchNorm, Ioffe & Szegedy 2015), residual relu
 * (He et al. 2016), sigmoid + dropout 0.5 (Srivastava et al. 2014: a regularizer, not a cure), and
 * relu with a too-large init (2.5× the He std) without and with gradient clipping
 * (clipOptimizer, globalClipNorm; Pascanu et al. 2013). The diagnostics are the per-layer kernel
 * gradient norms ‖∂L/∂W⁽ˡ⁾‖ of Glorot & Bengio (2010) on a fixed probe batch, their first/last
 * ratio, the loss curve, held-out accuracy, and the saturated (|f′| < 0.01) and dead-ReLU fractions.
 *
 *   npm run experiment:vanishing-gradient -- [--quick] [--depth 20] [--width 64] [--epochs N]
 *       [--seed 1] [--backend wasm|cpu|tensorflow] [--out reports/vanishing-gradient]
 *
 * Writes `<out>/report.md` (table + interpretation generated from the numbers),
 * `<out>/results.json` (every number; NaN/Infinity as strings) and SVG charts. Reproducible: the
 * seed fixes the data split, every initializer, the dropout mask sequences and `Math.random`
 * (tfjs draws its fit() shuffle from it), seeded per configuration.
 */
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../lib/backend';
import { parseArgs } from '../lib/cli';
import { mnistSplit, take, toTensors } from '../lib/mnist';
import { Progress } from '../lib/progress';
import { fmt, formatTable, writeReport } from '../lib/report';
import { CONFIGS, MOMENTUM } from './configs';
import { interpret } from './interpret';
import { vanishingGradientReport } from './report';
import { Result, runConfig, TrainSettings } from './run';

const DEFAULTS = {
  quick: false,
  depth: 20,
  width: 0, // 0: 64, or 32 with --quick
  epochs: 0, // 0: the mode's default
  trainPerClass: 0, // 0: the mode's default
  batchSize: 32,
  lr: 0.01,
  seeds: 3,
  firstSeed: 1,
  backend: '',
  out: 'reports/vanishing-gradient',
};

/** Per-mode defaults, chosen so the default run takes a few minutes on 2 wasm cores. */
const MODES = {
  quick: { width: 32, epochs: 2, trainPerClass: 40, heldOutPerClass: 30, probe: 64, seeds: 1 },
  full: { width: 64, epochs: 8, trainPerClass: 150, heldOutPerClass: 100, probe: 128, seeds: 3 },
};

async function main(): Promise<void> {
  const args = parseArgs(DEFAULTS, process.argv.slice(2), {
    usage: 'Usage: npx tsx experiments/vanishing-gradient/main.ts [flags]',
  });
  const mode = args.quick ? MODES.quick : MODES.full;
  const explicitSeeds = process.argv.slice(2).some((a) => /^--seeds(=|$)/.test(a));
  const seeds = explicitSeeds ? args.seeds : mode.seeds;
  if (!Number.isInteger(seeds) || seeds < 1) {
    throw new Error(`vanishing-gradient: expected --seeds an integer ≥ 1, received: ${seeds}.`);
  }
  const settings: TrainSettings = {
    depth: args.depth,
    width: args.width || mode.width,
    epochs: args.epochs || mode.epochs,
    batchSize: args.batchSize,
    lr: args.lr,
    seed: args.firstSeed,
  };
  const backend = await useBackend(args.backend);
  const startedAt = Date.now();
  const splitOf = (seed: number) =>
    mnistSplit({
      trainPerClass: args.trainPerClass || mode.trainPerClass,
      heldOutPerClass: mode.heldOutPerClass,
      seed,
    });
  const split = splitOf(settings.seed);
  const batchesPerEpoch = Math.ceil(split.train.n / settings.batchSize);
  console.error(
    `vanishing-gradient: depth ${settings.depth}, width ${settings.width}, ${split.train.n} training / ` +
      `${split.heldOut.n} held-out digits, at most ${settings.epochs} epochs (stop on a loss plateau), ` +
      `batch ${settings.batchSize}, SGD lr ${settings.lr} momentum ${MOMENTUM}, probe ${mode.probe}, ` +
      `seeds ${settings.seed}–${settings.seed + seeds - 1}`,
  );
  // The budget is an upper bound (the plateau rule stops most runs earlier).
  const progress = new Progress(seeds * CONFIGS.length * settings.epochs * batchesPerEpoch, {
    label: 'vanishing-gradient',
  });
  // Every seed trains every configuration; the first seed's runs carry the per-layer diagnostics
  // of the report, the others add their held-out accuracy.
  let results: Result[] = [];
  for (let k = 0; k < seeds; k++) {
    const seed = settings.seed + k;
    const s = k === 0 ? split : splitOf(seed);
    const train = toTensors(s.train);
    const test = toTensors(s.heldOut);
    const probe = toTensors(take(s.train, mode.probe));
    const data = { xs: train.xs, ys: train.ys, testXs: test.xs, testYs: test.ys, probe };
    const seedResults: Result[] = [];
    for (let i = 0; i < CONFIGS.length; i++) {
      const config = CONFIGS[i];
      progress.boundary(`seed ${seed} ${config.name} (${i + 1}/${CONFIGS.length}) started`);
      seedResults.push(
        await runConfig(config, { ...settings, seed }, data, i, (loss) =>
          progress.tick(1, `seed ${seed} ${config.name} loss ${fmt(loss)}`),
        ),
      );
    }
    tf.dispose([train.xs, train.ys, test.xs, test.ys, probe.xs, probe.ys]);
    if (k === 0) results = seedResults;
    else {
      seedResults.forEach((r, i) => {
        results[i].heldOutAccuracySeeds.push(r.heldOutAccuracy);
        results[i].epochsRunSeeds.push(r.epochsRun);
      });
    }
  }
  progress.done();
  // Statements and tables use the mean over seeds; the per-seed values stay in results.json.
  for (const r of results) {
    r.heldOutAccuracy =
      r.heldOutAccuracySeeds.reduce((a, b) => a + b, 0) / r.heldOutAccuracySeeds.length;
  }

  const chance = 0.1;
  const interpretation = interpret(results, { ...settings, chance });
  const report = vanishingGradientReport({
    results,
    interpretation,
    settings: {
      ...settings,
      optimizer: `SGD, learning rate ${settings.lr}, momentum ${MOMENTUM}`,
      trainDigits: split.train.n,
      heldOutDigits: split.heldOut.n,
      probeBatch: mode.probe,
      seeds,
      quick: args.quick,
      backend,
      tfjs: tf.version.tfjs,
    },
    totalSeconds: (Date.now() - startedAt) / 1000,
  });
  console.log(formatTable(report.table.header, report.table.rows));
  await writeReport(args.out, report);
  console.error(
    `wrote ${args.out}/report.md, results.json and ${Object.keys(report.charts).length} charts`,
  );
}

main().catch((e) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exit(1);
});
