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
 * Each run trains until its validation loss stops improving (the plateau rule of ./run.ts; at most
 * `--epochs`), so accuracies are compared where each net has converged; every seed trains every
 * configuration, and the (seed, configuration) runs share the cores as pool tasks (`--jobs`).
 *
 *   npm run experiment:vanishing-gradient -- [--quick] [--depth 20] [--width 64] [--epochs N]
 *       [--seeds 3] [--first-seed 1] [--configs a,b] [--jobs N] [--backend wasm|cpu|tensorflow]
 *       [--out reports/vanishing-gradient]
 *
 * Writes `<out>/report.md` (table + interpretation generated from the numbers),
 * `<out>/results.json` (every number; NaN/Infinity as strings) and SVG charts. Reproducible: the
 * seed fixes the data split, every initializer, the dropout mask sequences and `Math.random`
 * (tfjs draws its fit() shuffle from it), seeded per configuration.
 */
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../lib/backend';
import { parseArgs } from '../lib/cli';
import { MnistData, mnistSplit, take, toTensors } from '../lib/mnist';
import { poolFlags, selectConfigIds } from '../lib/options';
import { PickBackend, runExperimentTasks, serveExperimentWorker, TaskRunner } from '../lib/tasks';
import { fmt, formatTable, fromJson, pct, toJson, writeReport } from '../lib/report';
import { CONFIGS, MOMENTUM } from './configs';
import { interpret } from './interpret';
import { vanishingGradientReport } from './report';
import { Data, Result, runConfig, TrainSettings } from './run';

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
  ...poolFlags('reports/vanishing-gradient'),
};

/** Per-mode defaults, chosen so the default run takes a few minutes on 2 wasm cores. */
const MODES = {
  quick: {
    width: 32,
    epochs: 2,
    trainPerClass: 40,
    validationPerClass: 10,
    heldOutPerClass: 30,
    probe: 64,
    seeds: 1,
  },
  full: {
    width: 64,
    epochs: 40,
    trainPerClass: 150,
    validationPerClass: 50,
    heldOutPerClass: 100,
    probe: 128,
    seeds: 3,
  },
};

/**
 * Trains (seed, configuration) tasks in this process, caching each seed's tensors; a task's result
 * is {@link toJson} text, so NaN and Infinity (the exploding runs) survive the pool's IPC.
 */
function taskRunner(
  settings: TrainSettings,
  splitOf: (seed: number) => { train: MnistData; validation: MnistData; heldOut: MnistData },
  probeSize: number,
): TaskRunner<string> {
  const cache = new Map<number, Data>();
  const dataOf = (seed: number): Data => {
    if (!cache.has(seed)) {
      const s = splitOf(seed);
      const [train, val, test] = [s.train, s.validation, s.heldOut].map(toTensors);
      const probe = toTensors(take(s.train, probeSize));
      cache.set(seed, {
        ...{ xs: train.xs, ys: train.ys, valXs: val.xs, valYs: val.ys },
        ...{ testXs: test.xs, testYs: test.ys, probe },
      });
    }
    return cache.get(seed)!;
  };
  return {
    run: async (task, onProgress) => {
      const index = CONFIGS.findIndex((c) => c.name === task.config);
      const result = await runConfig(
        CONFIGS[index],
        { ...settings, seed: task.seed },
        dataOf(task.seed),
        index,
        (loss) => onProgress(1, `loss ${fmt(loss)}`),
      );
      return toJson(result);
    },
    dispose: () => {
      for (const d of cache.values()) {
        tf.dispose([d.xs, d.ys, d.valXs, d.valYs, d.testXs, d.testYs, d.probe.xs, d.probe.ys]);
      }
    },
  };
}

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
  const splitOf = (seed: number) =>
    mnistSplit({
      trainPerClass: args.trainPerClass || mode.trainPerClass,
      heldOutPerClass: mode.heldOutPerClass,
      validationPerClass: mode.validationPerClass,
      seed,
    });
  const pickBackend: PickBackend = (log) => useBackend(args.backend, log);
  const runner = () => taskRunner(settings, splitOf, mode.probe);
  if (args.worker) return serveExperimentWorker(pickBackend, runner);
  const configs = selectConfigIds(
    'vanishing-gradient',
    CONFIGS.map((c) => ({ id: c.name })),
    args.configs,
  );
  const seedValues = Array.from({ length: seeds }, (_, k) => settings.seed + k);
  // Longest first (the pool hands tasks out in order, so no worker waits alone on a long run at
  // the end): the BN nets and the clipped exploding net train for the most epochs.
  const LONG = ['exploding+clip', 'relu+bn', 'sigmoid+bn'];
  const order = [...configs].sort((a, b) => Number(LONG.includes(b)) - Number(LONG.includes(a)));
  const tasks = seedValues.flatMap((seed) => order.map((config) => ({ seed, config })));
  const startedAt = Date.now();
  const split = splitOf(settings.seed);
  const batchesPerEpoch = Math.ceil(split.train.n / settings.batchSize);
  console.error(
    `vanishing-gradient: depth ${settings.depth}, width ${settings.width}, ${split.train.n} training / ` +
      `${split.validation.n} validation / ${split.heldOut.n} held-out digits, at most ` +
      `${settings.epochs} epochs (stop on a validation-loss plateau), ` +
      `batch ${settings.batchSize}, SGD lr ${settings.lr} momentum ${MOMENTUM}, probe ${mode.probe}, ` +
      `seeds ${settings.seed}–${settings.seed + seeds - 1}`,
  );
  // Every seed trains every configuration (on the pool when --jobs > 1; the progress total is an
  // upper bound: the plateau rule stops most runs earlier). The first seed's runs carry the
  // per-layer diagnostics of the report, the others add their held-out accuracy.
  const outcome = await runExperimentTasks<string>({
    label: 'vanishing-gradient',
    jobs: args.jobs,
    tasks,
    unitsPerTask: settings.epochs * batchesPerEpoch,
    pickBackend,
    createRunner: runner,
    doneLine: (task, json) => {
      const r = fromJson<Result>(json);
      return (
        `seed ${task.seed} ${task.config} done: held-out acc ${pct(r.heldOutAccuracy)}, ` +
        `${r.epochsRun} epochs (${r.stoppedBy}, ${r.seconds.toFixed(1)} s)`
      );
    },
  });
  const backend = outcome.backend;
  const all = outcome.results.map((json) => fromJson<Result>(json));
  // In the order of CONFIGS, from the first seed's runs; the other seeds add their numbers.
  const firstSeed = all.filter((_, i) => tasks[i].seed === settings.seed);
  const results = configs.map((name) => firstSeed.find((r) => r.name === name)!);
  for (const r of all.filter((_, i) => tasks[i].seed !== settings.seed)) {
    const first = results.find((x) => x.name === r.name)!;
    first.heldOutAccuracySeeds.push(r.heldOutAccuracy);
    first.epochsRunSeeds.push(r.epochsRun);
    first.stoppedBySeeds.push(r.stoppedBy);
  }
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
      validationDigits: split.validation.n,
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
