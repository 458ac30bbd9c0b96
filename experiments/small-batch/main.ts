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
import * as path from 'path';
import { useConvTrainingBackend } from '../lib/backend';
import { OnProgress, runTasks, serveWorker, Task } from '../lib/pool';
import { Progress } from '../lib/progress';
import { formatTable, pct, writeReport } from '../lib/report';
import { claims, summarize } from './analysis';
import { configById, NormKind, runsIn, Setting, settings as settingsOf } from './configs';
import { Options, parseOptions, selectedConfigs } from './options';
import { accuracyTable, smallBatchReport } from './report';
import { runTask, SeedCache, SmallBatchRun } from './train';

/** A task's `config` field: `<setting>/<configuration>`. */
const taskKey = (setting: Setting, config: string) => `${setting.id}/${config}`;

function taskRunner(o: Options, settings: readonly Setting[]) {
  const cache = new SeedCache(o);
  const run = (task: Task, onProgress: OnProgress) => {
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

async function worker(o: Options, settings: readonly Setting[]): Promise<void> {
  let announcement = '';
  const { name } = await useConvTrainingBackend(o.backend, (line) => (announcement = line));
  const runner = taskRunner(o, settings);
  serveWorker(name, announcement, runner.run, runner.dispose);
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const settings = settingsOf(o.batchSizeList, o.nonIidBatch);
  if (o.worker) return worker(o, settings);
  const configs = selectedConfigs(o);
  const seeds = Array.from({ length: o.seeds }, (_, i) => o.firstSeed + i);
  const tasks = seeds.flatMap((seed) =>
    settings.flatMap((s) =>
      configs.filter((c) => runsIn(configById(c), s)).map((c) => ({ seed, config: taskKey(s, c) })),
    ),
  );
  const started = Date.now();
  const progress = new Progress(tasks.length * o.steps, { label: 'small-batch' });
  const begun = new Set<string>();
  const runner = taskRunner(o, settings);
  let reason = '';
  const { results: runs, backend: backendName } = await runTasks<SmallBatchRun>({
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
        `seed ${task.seed} ${task.config} done: held-out acc ${pct(r.heldOutAcc)} ` +
          `(${r.seconds.toFixed(1)} s)`,
      ),
  });
  runner.dispose();
  progress.done();
  // In a pool the workers picked the backend, and the same way: ask again here for the reason.
  reason ||= (await useConvTrainingBackend(o.backend, () => {})).reason;
  const summaries = summarize(runs, settings);
  const verdicts = claims(summaries);
  const table = accuracyTable(summaries, settings);
  console.log(
    `\nSmall-batch CNN on ${o.trainSize} MNIST digits, ${o.heldOutSize} held out; ${seeds.length} seed(s), ` +
      `${o.steps} steps per run, held-out accuracy mean ± std over seeds (${backendName})\n`,
  );
  console.log(formatTable(table.header, table.rows));
  console.log('');
  for (const c of verdicts) console.log(`${c.verdict.padEnd(13)} ${c.claim}`);
  const leaks = runs.filter((r) => r.leaked !== 0);
  if (leaks.length > 0) console.error(`warning: tensors leaked in ${leaks.length} run(s)`);

  const report = smallBatchReport({
    o,
    seeds,
    settings,
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
