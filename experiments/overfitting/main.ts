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
import { Progress } from '../lib/progress';
import { fmt, formatTable, writeReport } from '../lib/report';
import { agreement, auroc, showStat } from '../lib/stats';
import { aggregate, ConfigStats, meanCurve, metricInfo, MetricKey } from '../lib/curves';
import { entropySummary, uncertaintySplit } from './analysis';
import { OVERFIT, Options, parseOptions, selectedConfigs, validate } from './options';
import { OnProgress, runTasks, serveWorker, Task } from '../lib/pool';
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

/** Trains one task in this process, with this process's cache of the seeds' data. */
function taskRunner(o: Options) {
  const cache = new SeedCache(taskOptions(o));
  const run = (task: Task, onProgress: OnProgress) =>
    runTask(cache, taskOptions(o), task.seed, task.config, (epoch, m) =>
      onProgress(1, `epoch ${epoch} held-out loss ${fmt(m.heldOutLoss)}`),
    );
  return { run, dispose: () => cache.dispose() };
}

/** The `--worker` side of the pool: trains the tasks the parent sends. */
async function worker(o: Options): Promise<void> {
  let announcement = '';
  const backend = await useBackend(o.backend, (line) => (announcement = line));
  const runner = taskRunner(o);
  serveWorker(backend, announcement, runner.run, runner.dispose);
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
  validate(o);
  if (o.worker) return worker(o);
  const configs = selectedConfigs(o);
  const seeds = Array.from({ length: o.seeds }, (_, i) => o.firstSeed + i);
  const tasks = seeds.flatMap((seed) => configs.map((c) => ({ seed, config: c.id })));
  const started = Date.now();

  const progress = new Progress(tasks.length * o.epochs, { label: 'overfitting' });
  const begun = new Set<string>();
  const runner = taskRunner(o);
  const { results, backend } = await runTasks<TaskResult>({
    jobs: o.jobs,
    tasks,
    backend: () => useBackend(o.backend),
    local: runner.run,
    onProgress: (task, steps, status) => {
      const name = `seed ${task.seed} ${task.config}`;
      if (!begun.has(name)) {
        begun.add(name);
        progress.boundary(`${name} started`);
      }
      progress.tick(steps, `${name} ${status}`);
    },
    onDone: (_task, { run: r }) => {
      const m = r.metrics;
      progress.boundary(
        `seed ${r.seed} ${r.config} done: train acc ${fmt(m.finalTrainAcc)}, held-out acc ` +
          `${fmt(m.finalHeldOutAcc)}, min held-out loss ${fmt(m.minHeldOutLoss)} @${m.bestLossEpoch} ` +
          `(${r.seconds.toFixed(1)} s)`,
      );
    },
  });
  runner.dispose();
  progress.done();
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
    (['finalHeldOutAcc', 'bestHeldOutAcc'] as MetricKey[]).map((m) =>
      agreement(a, stats[a], b, stats[b], m),
    ),
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
