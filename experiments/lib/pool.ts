/**
 * A small process pool for the experiments. tfjs on wasm (or cpu) computes on one thread, so on a
 * machine with k cores, k worker processes train k models at once. Each worker is the experiment's
 * own script forked with `--worker` (same flags, same tsx loader via `process.execArgv`); the
 * parent hands out (seed, configuration) tasks one at a time over the IPC channel, so a fast worker
 * takes more. Results must not depend on which worker ran a task: every random choice is seeded by
 * the task.
 */
import { ChildProcess, fork } from 'child_process';

/** One unit of work. */
export interface Task {
  seed: number;
  config: string;
}

/** Parent → worker. */
export type ToWorker = ({ type: 'task' } & Task) | { type: 'exit' };

/** Worker → parent. */
export type FromWorker<R> =
  | { type: 'ready'; backend: string; announcement: string }
  | { type: 'progress'; task: Task; steps: number; status: string }
  | { type: 'done'; result: R }
  | { type: 'error'; message: string };

/** What a task reports while it runs: `steps` units of work done, and what it is doing. */
export type OnProgress = (steps: number, status: string) => void;

/**
 * Runs `tasks` on `jobs` forked workers of `script` (started with `args`); `onProgress` sees every
 * progress message, `onDone` every finished task. Resolves with the results in task order and the
 * workers' backend; rejects (and kills the remaining workers) when a worker fails.
 */
export function runPool<R>(
  script: string,
  args: readonly string[],
  jobs: number,
  tasks: readonly Task[],
  onProgress: (task: Task, steps: number, status: string) => void,
  onDone: (task: Task, result: R) => void = () => {},
): Promise<{ results: R[]; backend: string }> {
  return new Promise((resolve, reject) => {
    const results = new Array<R | undefined>(tasks.length);
    const workers: ChildProcess[] = [];
    let next = 0;
    let finished = 0;
    let backend = '';
    let failed = false;

    const fail = (error: Error) => {
      if (failed) return;
      failed = true;
      for (const w of workers) if (w.exitCode === null) w.kill();
      reject(error);
    };
    const send = (w: ChildProcess, message: ToWorker) => w.send(message);
    const feed = (w: ChildProcess, current: { index: number }) => {
      if (next < tasks.length) {
        current.index = next++;
        send(w, { type: 'task', ...tasks[current.index] });
      } else {
        current.index = -1;
        send(w, { type: 'exit' });
      }
    };

    for (let j = 0; j < Math.min(jobs, tasks.length); j++) {
      const worker = fork(script, [...args, '--worker'], {
        execArgv: process.execArgv,
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      workers.push(worker);
      const current = { index: -1 };
      worker.on('message', (raw) => {
        const message = raw as FromWorker<R>;
        switch (message.type) {
          case 'ready':
            if (!backend) {
              console.error(
                `${message.announcement}, in ${Math.min(jobs, tasks.length)} worker processes`,
              );
            }
            backend = message.backend;
            feed(worker, current);
            break;
          case 'progress':
            onProgress(message.task, message.steps, message.status);
            break;
          case 'done':
            results[current.index] = message.result;
            finished++;
            onDone(tasks[current.index], message.result);
            if (finished === tasks.length) resolve({ results: results as R[], backend });
            feed(worker, current);
            break;
          case 'error':
            fail(new Error(`worker: ${message.message}`));
            break;
        }
      });
      worker.on('exit', (code) => {
        if (current.index !== -1 || (code !== 0 && finished < tasks.length)) {
          fail(new Error(`worker exited with code ${code} during a task.`));
        }
      });
      worker.on('error', fail);
    }
  });
}

/**
 * The worker side: answers the parent's tasks with `run`, one at a time, and exits when told.
 * `announcement` is the backend's one-line description, which the parent prints once.
 */
export function serveWorker<R>(
  backend: string,
  announcement: string,
  run: (task: Task, onProgress: OnProgress) => Promise<R>,
  cleanup: () => void = () => {},
): void {
  const send = (message: FromWorker<R>) => process.send?.(message);
  process.on('message', (raw) => {
    const message = raw as ToWorker;
    if (message.type === 'exit') {
      cleanup();
      process.exit(0);
    }
    const task: Task = { seed: message.seed, config: message.config };
    run(task, (steps, status) => send({ type: 'progress', task, steps, status })).then(
      (result) => send({ type: 'done', result }),
      (error: unknown) =>
        send({
          type: 'error',
          message: error instanceof Error ? (error.stack ?? error.message) : String(error),
        }),
    );
  });
  send({ type: 'ready', backend, announcement });
}

/**
 * Runs `tasks` in this process (`jobs` 1, or a single task) or on a pool of `jobs` workers, with
 * one progress callback for both. `local` runs a task here; the pool's workers run
 * `serveWorker` with the same function.
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
  const { jobs, tasks, onProgress, onDone } = options;
  if (jobs > 1 && tasks.length > 1) {
    return runPool<R>(process.argv[1], process.argv.slice(2), jobs, tasks, onProgress, onDone);
  }
  const backend = await options.backend();
  const results: R[] = [];
  for (const task of tasks) {
    const result = await options.local(task, (steps, status) => onProgress(task, steps, status));
    onDone(task, result);
    results.push(result);
  }
  return { results, backend };
}
