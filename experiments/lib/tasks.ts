/**
 * The (seed × configuration) loop the pooled experiments share: the seeds a run covers, its tasks
 * run in this process or on the worker pool (./pool.ts) with one progress bar, a line at every
 * task boundary, and the `--worker` side that serves the pool.
 *
 * ```ts
 * if (o.worker) return serveExperimentWorker(pickBackend, createRunner);
 * const { results, backend } = await runExperimentTasks({ label: 'cnn', jobs: o.jobs, tasks, ... });
 * ```
 */
import { OnProgress, runTasks, serveWorker, Task } from './pool';
import { Progress } from './progress';

/** Seeds `firstSeed`, `firstSeed + 1`, … (`seeds` of them): the `--seeds` / `--first-seed` flags. */
export function seedList(o: { seeds: number; firstSeed: number }): number[] {
  return Array.from({ length: o.seeds }, (_, i) => o.firstSeed + i);
}

/**
 * Runs an experiment's tasks in one process: `run` one task at a time, sharing what the process
 * caches across tasks (a seed's data), and `dispose` of that cache at the end.
 */
export interface TaskRunner<R> {
  run: (task: Task, onProgress: OnProgress) => Promise<R>;
  dispose: () => void;
}

/**
 * Picks this process's backend and returns its name; `log` receives the one-line announcement
 * (default: stderr).
 */
export type PickBackend = (log?: (line: string) => void) => Promise<string>;

/** Options of {@link runExperimentTasks}. */
export interface ExperimentTasksOptions<R> {
  /** The experiment's name, first on every progress line. */
  label: string;
  /** Worker processes (1: every task in this process). */
  jobs: number;
  tasks: readonly Task[];
  /** Progress units (epochs, batches, steps) one task reports in all. */
  unitsPerTask: number;
  pickBackend: PickBackend;
  /** A runner for this process (the pool's workers build their own in {@link serveExperimentWorker}). */
  createRunner: () => TaskRunner<R>;
  /** The progress line when a task is done: what it measured and how long it took. */
  doneLine: (task: Task, result: R) => string;
}

/**
 * Runs every task (on the pool when `jobs` > 1) with a progress bar: a boundary line when a task
 * starts and when it is done. Resolves with the results in task order and the backend they ran on.
 */
export async function runExperimentTasks<R>(
  options: ExperimentTasksOptions<R>,
): Promise<{ results: R[]; backend: string }> {
  const { tasks } = options;
  const progress = new Progress(tasks.length * options.unitsPerTask, { label: options.label });
  const begun = new Set<string>();
  const runner = options.createRunner();
  const outcome = await runTasks<R>({
    jobs: options.jobs,
    tasks,
    backend: () => options.pickBackend(),
    local: runner.run,
    onProgress: (task, steps, status) => {
      const name = `seed ${task.seed} ${task.config}`;
      if (!begun.has(name)) {
        begun.add(name);
        progress.boundary(`${name} started`);
      }
      progress.tick(steps, `${name} ${status}`);
    },
    onDone: (task, result) => progress.boundary(options.doneLine(task, result)),
  });
  runner.dispose();
  progress.done();
  return outcome;
}

/**
 * The `--worker` side of {@link runExperimentTasks}: picks the backend (its announcement goes to
 * the parent, which prints it once) and trains the tasks the parent sends.
 */
export async function serveExperimentWorker<R>(
  pickBackend: PickBackend,
  createRunner: () => TaskRunner<R>,
): Promise<void> {
  let announcement = '';
  const backend = await pickBackend((line) => (announcement = line));
  const runner = createRunner();
  serveWorker(backend, announcement, runner.run, runner.dispose);
}
