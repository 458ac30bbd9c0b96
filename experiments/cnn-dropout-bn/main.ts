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
import * as path from 'path';
import { useConvTrainingBackend } from '../lib/backend';
import { Progress } from '../lib/progress';
import { OnProgress, runTasks, serveWorker, Task } from '../lib/pool';
import { fmt, formatTable, writeReport } from '../lib/report';
import { claims, summarize } from './analysis';
import { Options, parseOptions, selectedConfigs } from './options';
import { cnnReport, resultsTable } from './report';
import { CnnRun, runTask, SeedCache } from './train';

function taskRunner(o: Options) {
  const cache = new SeedCache(o);
  const run = (task: Task, onProgress: OnProgress) =>
    runTask(cache, o, task.seed, task.config, (status) => onProgress(1, status));
  return { run, dispose: () => cache.dispose() };
}

async function worker(o: Options): Promise<void> {
  let announcement = '';
  const { name } = await useConvTrainingBackend(o.backend, (line) => (announcement = line));
  const runner = taskRunner(o);
  serveWorker(name, announcement, runner.run, runner.dispose);
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  if (o.worker) return worker(o);
  const configs = selectedConfigs(o);
  const seeds = Array.from({ length: o.seeds }, (_, i) => o.firstSeed + i);
  const tasks = seeds.flatMap((seed) => configs.map((config) => ({ seed, config })));
  const started = Date.now();
  const batchesPerRun = Math.ceil(o.trainSize / o.batchSize) * o.epochs;
  const progress = new Progress(tasks.length * batchesPerRun, { label: 'cnn-dropout-bn' });
  const begun = new Set<string>();
  const runner = taskRunner(o);
  let reason = '';
  const { results: runs, backend: backendName } = await runTasks<CnnRun>({
    jobs: o.jobs,
    tasks,
    backend: async () => {
      const picked = await useConvTrainingBackend(o.backend);
      reason = picked.reason;
      return picked.name;
    },
    local: runner.run,
    onProgress: (task, steps, status) => {
      const name = `seed ${task.seed} ${task.config}`;
      if (!begun.has(name)) {
        begun.add(name);
        progress.boundary(`${name} started`);
      }
      progress.tick(steps, `${name} ${status}`);
    },
    onDone: (task, r) =>
      progress.boundary(
        `seed ${task.seed} ${task.config} done: held-out acc ${fmt(r.metrics.finalHeldOutAcc)}, ` +
          `loss gap ${fmt(r.metrics.lossGap)} (${r.seconds.toFixed(1)} s)`,
      ),
  });
  runner.dispose();
  progress.done();
  // In a pool the workers picked the backend, and the same way: ask again here for the reason.
  reason ||= (await useConvTrainingBackend(o.backend, () => {})).reason;
  const summaries = summarize(runs);
  const verdicts = claims(summaries);
  const table = resultsTable(summaries);
  console.log(
    `\nCNN on ${o.trainSize} MNIST digits, ${o.heldOutSize} held out; ${seeds.length} seed(s), ` +
      `${o.epochs} epochs, mean ± std over seeds (${backendName})\n`,
  );
  console.log(formatTable(table.header, table.rows));
  console.log('');
  for (const c of verdicts) console.log(`${c.verdict.padEnd(13)} ${c.claim}`);
  const leaks = runs.filter((r) => r.leaked !== 0);
  if (leaks.length > 0) console.error(`warning: tensors leaked in ${leaks.length} run(s)`);

  const report = cnnReport({
    o,
    seeds,
    backend: backendName,
    backendReason: reason,
    seconds: (Date.now() - started) / 1000,
    summaries,
    claims: verdicts,
    runs,
  });
  const written = await writeReport(o.out, report);
  console.log(
    `\nWrote ${path.relative(process.cwd(), written.markdown)} and ${written.charts.length} charts; ` +
      `${((Date.now() - started) / 1000).toFixed(0)} s in all.`,
  );
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exit(1);
});
