/**
 * Dropout and BatchNorm in a small CNN on real MNIST digits: nine configurations (no
 * regularization; dropout after the dense layer; SpatialDropout2D; DropBlock2D; BN after the conv
 * and before the ReLU, without and with the conv bias; BN after the ReLU; BN with dropout before
 * the later BNs; BN with dropout after the last BN), several seeds each. Measures held-out accuracy
 * and loss curves, the train–held-out gap, the effect of the bias before BN, and the variance
 * shift of Li et al. (CVPR 2019) at every BN, before and after `recalibrateBatchNorm`.
 *
 *   npm run experiment:cnn-dropout-bn                    # 3 seeds (needs a backend that trains convs fast)
 *   npm run experiment:cnn-dropout-bn -- --quick         # 1 seed of a smaller net
 *
 * Writes `<out>/report.md`, `<out>/results.json` and SVG charts; prints a table.
 */
import { convTrainingBackendReason, useConvTrainingBackend } from '../lib/backend';
import { fmt, printOutcome, writeReport, wroteLine } from '../lib/report';
import {
  PickBackend,
  runExperimentTasks,
  seedList,
  serveExperimentWorker,
  TaskRunner,
} from '../lib/tasks';
import { claims, summarize } from './analysis';
import { Options, parseOptions, selectedConfigs } from './options';
import { cnnReport, resultsTable } from './report';
import { CnnRun, runTask, SeedCache } from './train';

/** Trains tasks in this process, with this process's cache of the seeds' data. */
function taskRunner(o: Options): TaskRunner<CnnRun> {
  const cache = new SeedCache(o);
  return {
    run: (task, onProgress) =>
      runTask(cache, o, task.seed, task.config, (status) => onProgress(1, status)),
    dispose: () => cache.dispose(),
  };
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const pickBackend: PickBackend = async (log) =>
    (await useConvTrainingBackend(o.backend, log)).name;
  if (o.worker) return serveExperimentWorker(pickBackend, () => taskRunner(o));
  const configs = selectedConfigs(o);
  const seeds = seedList(o);
  const tasks = seeds.flatMap((seed) => configs.map((config) => ({ seed, config })));
  const started = Date.now();
  const { results: runs, backend: backendName } = await runExperimentTasks<CnnRun>({
    label: 'cnn-dropout-bn',
    jobs: o.jobs,
    tasks,
    unitsPerTask: Math.ceil(o.trainSize / o.batchSize) * o.epochs,
    pickBackend,
    createRunner: () => taskRunner(o),
    doneLine: (task, r) =>
      `seed ${task.seed} ${task.config} done: held-out acc ${fmt(r.metrics.finalHeldOutAcc)}, ` +
      `loss gap ${fmt(r.metrics.lossGap)} (${r.seconds.toFixed(1)} s)`,
  });
  const summaries = summarize(runs);
  const verdicts = claims(summaries);
  const table = resultsTable(summaries);
  printOutcome(
    `\nCNN on ${o.trainSize} MNIST digits, ${o.heldOutSize} held out; ${seeds.length} seed(s), ` +
      `${o.epochs} epochs, mean ± std over seeds (${backendName})\n`,
    table,
    verdicts,
    runs,
  );

  const report = cnnReport({
    o,
    seeds,
    backend: backendName,
    backendReason: convTrainingBackendReason(o.backend),
    seconds: (Date.now() - started) / 1000,
    summaries,
    claims: verdicts,
    runs,
  });
  const written = await writeReport(o.out, report);
  console.log(wroteLine(written, started));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exit(1);
});
