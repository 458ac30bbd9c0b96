/**
 * The overfitting experiment on real MNIST digits: an MLP trained on a small training set under
 * nine regularization configurations (none, the built-in Dropout, the pack's inverted and classic
 * Dropout, GaussianDropout, DropConnectDense, BatchNorm, BatchNorm + Dropout, L2), several seeds
 * each, with the same initial weights, data order and epochs for every configuration of a seed;
 * then Monte-Carlo dropout uncertainty on the held-out digits.
 *
 *   npm run experiment:overfitting                           # defaults below (wasm, worker pool)
 *   npx tsx experiments/overfitting/main.ts --quick          # 1 seed, smaller MLP, under a minute
 *   npx tsx experiments/overfitting/main.ts --seeds 5 --epochs 40 --hidden 512 --out reports/big
 *
 * Writes `<out>/report.md`, `<out>/results.json` (every number) and SVG charts; prints a table.
 */
import * as path from 'path';
import { useBackend } from '../lib/backend';
import { fmt, formatTable, writeReport } from '../lib/report';
import { auroc, compare, showStat } from '../lib/stats';
import { aggregate, ConfigStats, meanCurve, metricInfo, MetricKey } from '../lib/curves';
import { entropySummary, uncertaintySplit } from './analysis';
import { OVERFIT, Options, parseOptions, selectedConfigs } from './options';
import {
  PickBackend,
  runExperimentTasks,
  seedList,
  serveExperimentWorker,
  TaskRunner,
} from '../lib/tasks';
import { McSummary, overfittingReport, TABLE_METRICS } from './report';
import { runTask, SeedCache, TaskOptions, TaskResult } from './train';

/** The configuration whose model gets Monte-Carlo dropout, and the pairs that should agree. */
const MC_CONFIG = 'dropout';
const AGREEMENT_PAIRS: readonly [string, string][] = [
  ['dropout', 'tfjs-dropout'],
  ['dropout', 'dropout-classic'],
];

function taskOptions(o: Options): TaskOptions {
  return { ...o, mcConfig: MC_CONFIG };
}

/** Trains tasks in this process, with this process's cache of the seeds' data. */
function taskRunner(o: Options): TaskRunner<TaskResult> {
  const cache = new SeedCache(taskOptions(o));
  return {
    run: (task, onProgress) =>
      runTask(cache, taskOptions(o), task.seed, task.config, (epoch, m) =>
        onProgress(1, `epoch ${epoch} held-out loss ${fmt(m.heldOutLoss)}`),
      ),
    dispose: () => cache.dispose(),
  };
}

/** Monte-Carlo summaries of the MC configuration's runs, pooled and per seed. */
function mcSummary(results: readonly TaskResult[], samples: number): McSummary | undefined {
  const runs = results.flatMap((r) => (r.mc ? [{ seed: r.run.seed, ...r.mc }] : []));
  if (runs.length === 0) return undefined;
  return {
    config: MC_CONFIG,
    samples,
    mc: entropySummary(
      runs.flatMap((r) => r.entropy),
      runs.flatMap((r) => r.correct),
    ),
    deterministic: entropySummary(
      runs.flatMap((r) => r.deterministicEntropy),
      runs.flatMap((r) => r.deterministicCorrect),
    ),
    expectedEntropy: uncertaintySplit(
      runs.flatMap((r) => r.expectedEntropy),
      runs.flatMap((r) => r.correct),
    ),
    mutualInformation: uncertaintySplit(
      runs.flatMap((r) => r.mutualInformation),
      runs.flatMap((r) => r.correct),
    ),
    perSeed: runs.map((r) => ({
      seed: r.seed,
      mcAuroc: auroc(
        r.entropy,
        r.correct.map((c) => !c),
      ),
      deterministicAuroc: auroc(
        r.deterministicEntropy,
        r.deterministicCorrect.map((c) => !c),
      ),
      miAuroc: auroc(
        r.mutualInformation,
        r.correct.map((c) => !c),
      ),
      meanVarianceOfPredicted: r.meanVarianceOfPredicted,
    })),
  };
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const pickBackend: PickBackend = (log) => useBackend(o.backend, log);
  if (o.worker) return serveExperimentWorker(pickBackend, () => taskRunner(o));
  const configs = selectedConfigs(o);
  const seeds = seedList(o);
  const tasks = seeds.flatMap((seed) => configs.map((c) => ({ seed, config: c.id })));
  const started = Date.now();

  const { results, backend } = await runExperimentTasks<TaskResult>({
    label: 'overfitting',
    jobs: o.jobs,
    tasks,
    unitsPerTask: o.epochs,
    pickBackend,
    createRunner: () => taskRunner(o),
    doneLine: (_task, { run: r }) => {
      const m = r.metrics;
      return (
        `seed ${r.seed} ${r.config} done: train acc ${fmt(m.finalTrainAcc)}, held-out acc ` +
        `${fmt(m.finalHeldOutAcc)}, held-out loss at the selected epoch ${fmt(m.minHeldOutLoss)} @${m.bestLossEpoch} ` +
        `(${r.seconds.toFixed(1)} s)`
      );
    },
  });
  const trainSeconds = (Date.now() - started) / 1000;
  const runs = results.map((r) => r.run);
  const stats: Record<string, ConfigStats> = {};
  const curves: Record<string, ReturnType<typeof meanCurve>> = {};
  for (const c of configs) {
    const mine = runs.filter((r) => r.config === c.id);
    stats[c.id] = aggregate(mine.map((r) => r.metrics));
    curves[c.id] = meanCurve(mine.map((r) => r.curve));
  }
  const agreements = AGREEMENT_PAIRS.filter(([a, b]) => stats[a] && stats[b]).flatMap(([a, b]) =>
    (['finalHeldOutAcc', 'bestHeldOutAcc'] as MetricKey[]).map((m) => ({
      a,
      b,
      metric: m,
      ...compare(stats[a][m], stats[b][m], 'higher'),
    })),
  );
  const mc = mcSummary(results, o.mcSamples);

  console.log(
    `\nOverfitting on ${o.trainSize} MNIST digits, ${o.heldOutSize} held out; ` +
      `${seeds.length} seed(s), ${o.epochs} epochs, mean ± std over seeds (${backend}, ${trainSeconds.toFixed(0)} s)\n`,
  );
  console.log(
    formatTable(
      ['configuration', ...TABLE_METRICS.map((k) => metricInfo(k).short)],
      configs.map((c) => [c.id, ...TABLE_METRICS.map((k) => showStat(stats[c.id][k]))]),
    ),
  );
  if (mc) {
    console.log(
      `\nMC dropout (${o.mcSamples} samples): mean entropy wrong ${fmt(mc.mc.meanEntropyWrong)} vs correct ` +
        `${fmt(mc.mc.meanEntropyCorrect)} nats; error AUROC ${fmt(mc.mc.errorAuroc)} ` +
        `(deterministic ${fmt(mc.deterministic.errorAuroc)})`,
    );
  }
  const leaks = results
    .filter((r) => r.leaked !== 0)
    .map((r) => ({ seed: r.run.seed, config: r.run.config, tensors: r.leaked }));
  if (leaks.length > 0) console.error(`warning: tensors leaked: ${JSON.stringify(leaks)}`);

  const report = overfittingReport({
    o,
    overfit: OVERFIT,
    configs,
    seeds,
    backend,
    trainSeconds,
    stats,
    curves,
    agreements,
    mc,
    results,
    leaks,
  });
  const written = await writeReport(o.out, report);
  console.log(
    `\nWrote ${path.relative(process.cwd(), written.markdown)}, ${path.relative(process.cwd(), written.results)} ` +
      `and ${written.charts.length} charts; ${((Date.now() - started) / 1000).toFixed(0)} s in all.`,
  );
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exit(1);
});
