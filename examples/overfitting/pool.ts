/**
 * A small process pool for the experiment. tfjs on wasm (or cpu) computes on one thread, so on a
 * machine with k cores, k worker processes train k models at once. Each worker is this same script
 * forked with `--worker` (same flags, same tsx loader via `process.execArgv`); the parent hands out
 * (seed, configuration) tasks one at a time over the IPC channel, so a fast worker takes more.
 * Results do not depend on which worker ran a task: every random choice is seeded by the task.
 */
import { ChildProcess, fork } from 'child_process';
import type { TaskResult } from './experiment';

/** One unit of work. */
export interface Task {
  seed: number;
  config: string;
}

/** Parent → worker. */
export type ToWorker = ({ type: 'task' } & Task) | { type: 'exit' };

/** Worker → parent. */
export type FromWorker =
  | { type: 'ready'; backend: string }
  | ({ type: 'epoch'; epoch: number; heldOutLoss: number } & Task)
  | { type: 'done'; result: TaskResult }
  | { type: 'error'; message: string };

/**
 * Runs `tasks` on `jobs` forked workers of `script` (started with `args`); `onEpoch` sees every
 * epoch message, `onDone` every finished task. Resolves with the results in task order and the workers' backend; rejects (and
 * kills the remaining workers) when a worker fails.
 */
export function runPool(
  script: string,
  args: readonly string[],
  jobs: number,
  tasks: readonly Task[],
  onEpoch: (m: Extract<FromWorker, { type: 'epoch' }>) => void,
  onDone: (result: TaskResult) => void = () => {},
): Promise<{ results: TaskResult[]; backend: string }> {
  return new Promise((resolve, reject) => {
    const results = new Array<TaskResult | undefined>(tasks.length);
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
        const message = raw as FromWorker;
        switch (message.type) {
          case 'ready':
            backend = message.backend;
            feed(worker, current);
            break;
          case 'epoch':
            onEpoch(message);
            break;
          case 'done':
            results[current.index] = message.result;
            finished++;
            onDone(message.result);
            if (finished === tasks.length) resolve({ results: results as TaskResult[], backend });
            feed(worker, current);
            break;
          case 'error':
            fail(new Error(`overfitting worker: ${message.message}`));
            break;
        }
      });
      worker.on('exit', (code) => {
        if (current.index !== -1 || (code !== 0 && finished < tasks.length)) {
          fail(new Error(`overfitting worker exited with code ${code} during a task.`));
        }
      });
      worker.on('error', fail);
    }
  });
}

/**
 * The worker side: answers the parent's tasks with `run`, one at a time, and exits when told.
 */
export function serveWorker(
  backend: string,
  run: (task: Task, onEpoch: (epoch: number, heldOutLoss: number) => void) => Promise<TaskResult>,
  cleanup: () => void = () => {},
): void {
  const send = (message: FromWorker) => process.send?.(message);
  process.on('message', (raw) => {
    const message = raw as ToWorker;
    if (message.type === 'exit') {
      cleanup();
      process.exit(0);
    }
    const task: Task = { seed: message.seed, config: message.config };
    run(task, (epoch, heldOutLoss) => send({ type: 'epoch', epoch, heldOutLoss, ...task })).then(
      (result) => send({ type: 'done', result }),
      (error: unknown) =>
        send({
          type: 'error',
          message: error instanceof Error ? (error.stack ?? error.message) : String(error),
        }),
    );
  });
  send({ type: 'ready', backend });
}
