/**
 * The experiments' process pool, on `workerpool`'s process workers. tfjs on wasm (or cpu) computes
 * on one thread, so on a machine with k cores, k worker processes train k models at once. Each
 * worker is the experiment's own script forked with `--worker` (same flags, same tsx loader via
 * `process.execArgv`) and owns its tfjs backend; the pool hands out (seed, configuration) tasks one
 * at a time, so a fast worker takes more, and a task's progress comes back as worker events. A task
 * that throws or a worker that dies rejects the run and kills the other workers. Results must not
 * depend on which worker ran a task: every random choice is seeded by the task.
 */
import workerpool from 'workerpool';

/** One unit of work. */
export interface Task {
  seed: number;
  config: string;
}

/** What a task reports while it runs: `steps` units of work done, and what it is doing. */
export type OnProgress = (steps: number, status: string) => void;

/** Worker → parent while a task runs: its progress, or the worker's backend (first thing). */
type WorkerEvent = { steps: number; status: string } | { backend: string; announcement: string };

/**
 * The worker side: runs the parent's tasks with `run`, one at a time; `cleanup` when the pool
 * ends. `announcement` is the backend's one-line description, which the parent prints once.
 */
export function serveWorker<R>(
  backend: string,
  announcement: string,
  run: (task: Task, onProgress: OnProgress) => Promise<R>,
  cleanup: () => void = () => {},
): void {
  const emit = (event: WorkerEvent) => workerpool.workerEmit(event);
  const runTask = (task: Task) => {
    emit({ backend, announcement });
    return run(task, (steps, status) => emit({ steps, status }));
  };
  workerpool.worker({ run: runTask }, { onTerminate: cleanup });
}

/**
 * Runs `tasks` in this process (`jobs` 1, or a single task) or on `jobs` worker processes (which
 * run {@link serveWorker} with the same `local` function), with one progress callback for both.
 * Resolves with the results in task order and the backend they ran on.
 */
export async function runTasks<R>(options: {
  jobs: number;
  tasks: readonly Task[];
  /** Picks the backend in this process and prints its line; returns its name. */
  backend: () => Promise<string>;
  local: (task: Task, onProgress: OnProgress) => Promise<R>;
  onProgress: (task: Task, steps: number, status: string) => void;
  onDone: (task: Task, result: R) => void;
}): Promise<{ results: R[]; backend: string }> {
  const { tasks, onProgress, onDone } = options;
  const jobs = Math.min(options.jobs, tasks.length);
  if (jobs <= 1) {
    const backend = await options.backend();
    const results: R[] = [];
    for (const task of tasks) {
      const result = await options.local(task, (steps, status) => onProgress(task, steps, status));
      onDone(task, result);
      results.push(result);
    }
    return { results, backend };
  }
  const pool = workerpool.pool(process.argv[1], {
    workerType: 'process',
    maxWorkers: jobs,
    forkArgs: [...process.argv.slice(2), '--worker'],
    forkOpts: { execArgv: process.execArgv },
  });
  let backend = '';
  const on = (task: Task) => (event: WorkerEvent) => {
    if ('steps' in event) onProgress(task, event.steps, event.status);
    else if (!backend) {
      backend = event.backend;
      console.error(`${event.announcement}, in ${jobs} worker processes`);
    }
  };
  const run = async (task: Task) => {
    const result = (await pool.exec('run', [task], { on: on(task) })) as R;
    onDone(task, result);
    return result;
  };
  try {
    const results = await Promise.all(tasks.map(run));
    await pool.terminate();
    return { results, backend };
  } catch (error) {
    await pool.terminate(true);
    throw error;
  }
}
