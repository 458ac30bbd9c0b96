/**
 * The (seed × configuration) loop the pooled experiments share: the seeds a run covers, its tasks
 * run in this process (`--jobs 1`) or on `workerpool`'s process workers, with one progress display
 * (a line at every task boundary), and the `--worker` side of the pool.
 *
 * tfjs on wasm (or cpu) computes on one thread, so on k cores k worker processes train k models at
 * once. Each worker is the experiment's own script forked with `--worker` (same flags, same tsx
 * loader via `process.execArgv`) and owns its tfjs backend; the pool hands out tasks one at a time
 * (a fast worker takes more) and a task's progress comes back as worker events. A task that throws
 * or a worker that dies rejects the run and kills the other workers. Results must not depend on
 * which worker ran a task: every random choice is seeded by the task.
 *
 * ```ts
 * if (o.worker) return serveExperimentWorker(pickBackend, createRunner);
 * const { results, backend } = await runExperimentTasks({ label: 'cnn', jobs: o.jobs, tasks, ... });
 * ```
 */
import workerpool from 'workerpool';
import { Progress } from './progress';

/** One unit of work. */
export interface Task {
  seed: number;
  config: string;
}

/** What a task reports while it runs: `steps` units of work done, and what it is doing. */
export type OnProgress = (steps: number, status: string) => void;

/** Worker → parent while a task runs: its progress, or the worker's backend (first thing). */
type WorkerEvent = { steps: number; status: string } | { backend: string; announcement: string };

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
 * Runs every task (on `jobs` worker processes when `jobs` > 1) with a progress bar: a boundary line
 * when a task starts and when it is done. Resolves with the results in task order and the backend
 * they ran on; rejects when a task throws or a worker dies.
 */
export async function runExperimentTasks<R>(
  options: ExperimentTasksOptions<R>,
): Promise<{ results: R[]; backend: string }> {
  const { tasks } = options;
  const jobs = Math.min(options.jobs, tasks.length);
  const progress = new Progress(tasks.length * options.unitsPerTask, { label: options.label });
  const begun = new Set<string>();
  const onProgress =
    (task: Task): OnProgress =>
    (steps, status) => {
      const name = `seed ${task.seed} ${task.config}`;
      if (!begun.has(name)) {
        begun.add(name);
        progress.boundary(`${name} started`);
      }
      progress.tick(steps, `${name} ${status}`);
    };
  const pool =
    jobs > 1
      ? workerpool.pool(process.argv[1], {
          workerType: 'process',
          maxWorkers: jobs,
          forkArgs: [...process.argv.slice(2), '--worker'],
          forkOpts: { execArgv: process.execArgv },
        })
      : null;
  let backend = pool ? '' : await options.pickBackend();
  const runner = pool ? null : options.createRunner();
  const onEvent = (task: Task) => (event: WorkerEvent) => {
    if ('steps' in event) onProgress(task)(event.steps, event.status);
    else if (!backend) {
      backend = event.backend;
      console.error(`${event.announcement}, in ${jobs} worker processes`);
    }
  };
  const runOne = async (task: Task): Promise<R> => {
    const result = pool
      ? ((await pool.exec('run', [task], { on: onEvent(task) })) as R)
      : await runner!.run(task, onProgress(task));
    progress.boundary(options.doneLine(task, result));
    return result;
  };
  const results: R[] = [];
  try {
    if (pool) results.push(...(await Promise.all(tasks.map(runOne))));
    else for (const task of tasks) results.push(await runOne(task));
  } catch (error) {
    await pool?.terminate(true);
    progress.stop('failed');
    throw error;
  }
  await pool?.terminate();
  runner?.dispose();
  progress.done();
  return { results, backend };
}

/**
 * The `--worker` side of {@link runExperimentTasks}: picks the backend (its announcement goes to
 * the parent, which prints it once) and runs the tasks the pool sends, one at a time.
 */
export async function serveExperimentWorker<R>(
  pickBackend: PickBackend,
  createRunner: () => TaskRunner<R>,
): Promise<void> {
  let announcement = '';
  const backend = await pickBackend((line) => (announcement = line));
  const runner = createRunner();
  const emit = (event: WorkerEvent) => workerpool.workerEmit(event);
  const run = (task: Task) => {
    emit({ backend, announcement });
    return runner.run(task, (steps, status) => emit({ steps, status }));
  };
  workerpool.worker({ run }, { onTerminate: runner.dispose });
}
