/**
 * BatchNorm at small batch sizes and on a non-i.i.d. stream, and the two remedies of issue 15:
 * Batch Renormalization (Ioffe 2017) and Ghost BatchNorm (Hoffer et al. 2017), next to the
 * built-in BN, the pack's BN (unbiased running variance), the pack's BN recalibrated with
 * `recalibrateBatchNorm`, and no normalization. A small CNN on MNIST, batch sizes 2, 4, 8, 32 and a
 * stream whose every batch holds two classes; a fixed number of optimizer steps per run; several
 * seeds. Measures held-out accuracy, the running / population variance ratio and the
 * train/inference output gap at every BN.
 *
 *   npm run experiment:small-batch                    # 3 seeds (a few minutes on 2 cores)
 *   npm run experiment:small-batch -- --quick         # 1 seed, batch 2 and 32, a smoke run
 *
 * Writes `<out>/report.md`, `<out>/results.json` and SVG charts; prints a table.
 */
import { convTrainingBackendReason, useConvTrainingBackend } from '../lib/backend';
import { pct, printOutcome, writeReport, wroteLine } from '../lib/report';
import {
  PickBackend,
  runExperimentTasks,
  seedList,
  serveExperimentWorker,
  TaskRunner,
} from '../lib/tasks';
import { claims, summarize } from './analysis';
import { configById, NormKind, runsIn, Setting, settings as settingsOf } from './configs';
import { Options, parseOptions, selectedConfigs } from './options';
import { accuracyTable, smallBatchReport } from './report';
import { runTask, SeedCache, SmallBatchRun } from './train';

/** A task's `config` field: `<setting>/<configuration>`. */
const taskKey = (setting: Setting, config: string) => `${setting.id}/${config}`;

/** Trains tasks in this process, with this process's cache of the seeds' data. */
function taskRunner(o: Options, settings: readonly Setting[]): TaskRunner<SmallBatchRun> {
  const cache = new SeedCache(o);
  const run: TaskRunner<SmallBatchRun>['run'] = (task, onProgress) => {
    const [settingId, config] = task.config.split('/');
    const setting = settings.find((s) => s.id === settingId)!;
    let last = 0;
    return runTask(cache, o, task.seed, setting, config as NormKind, (status) => {
      const step = Number(/step (\d+)/.exec(status)?.[1] ?? last);
      onProgress(step - last, status);
      last = step;
    });
  };
  return { run, dispose: () => cache.dispose() };
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const settings = settingsOf(o.batchSizeList, o.nonIidBatch);
  const pickBackend: PickBackend = async (log) =>
    (await useConvTrainingBackend(o.backend, log)).name;
  if (o.worker) return serveExperimentWorker(pickBackend, () => taskRunner(o, settings));
  const configs = selectedConfigs(o);
  const seeds = seedList(o);
  const tasks = seeds.flatMap((seed) =>
    settings.flatMap((s) =>
      configs.filter((c) => runsIn(configById(c), s)).map((c) => ({ seed, config: taskKey(s, c) })),
    ),
  );
  const started = Date.now();
  const { results: runs, backend: backendName } = await runExperimentTasks<SmallBatchRun>({
    label: 'small-batch',
    jobs: o.jobs,
    tasks,
    unitsPerTask: o.steps,
    pickBackend,
    createRunner: () => taskRunner(o, settings),
    doneLine: (task, r) =>
      `seed ${task.seed} ${task.config} done: held-out acc ${pct(r.heldOutAcc)} ` +
      `(${r.seconds.toFixed(1)} s)`,
  });
  const summaries = summarize(runs, settings);
  const verdicts = claims(summaries);
  const table = accuracyTable(summaries, settings);
  printOutcome(
    `\nSmall-batch CNN on ${o.trainSize} MNIST digits, ${o.heldOutSize} held out; ${seeds.length} seed(s), ` +
      `${o.steps} steps per run, held-out accuracy mean ± std over seeds (${backendName})\n`,
    table,
    verdicts,
    runs,
  );

  const report = smallBatchReport({
    o,
    seeds,
    settings,
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
