/**
 * Helpers of the tests that run an experiment's `--quick` mode as a child process (its charts use
 * ESM-only vega, which jest's CommonJS runtime cannot load in-process) and read what it wrote.
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { promisify } from 'util';

const ROOT = path.resolve(__dirname, '..');

/** A quick run of `experiments/<name>/main.ts` into its own temporary folder `out`. */
export interface QuickRun {
  out: string;
  /** Runs it (tsx, `--quick --out <out>`); rejects on a non-zero exit or after `timeoutMs`. */
  run(): Promise<{ stdout: string; stderr: string }>;
  /** Deletes `out`. */
  remove(): void;
}

/** See {@link QuickRun}; `timeoutMs` only stops a hung run (speed is not asserted in unit tests). */
export function quickRun(name: string, timeoutMs: number): QuickRun {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  return {
    out,
    run: () =>
      promisify(execFile)(
        path.join(ROOT, 'node_modules', '.bin', 'tsx'),
        [`experiments/${name}/main.ts`, '--quick', '--out', out],
        { cwd: ROOT, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      ),
    remove: () => fs.rmSync(out, { recursive: true, force: true }),
  };
}

/** The item of `items` that `matches`; an error naming `what` when there is none. */
export function findIn<T>(items: readonly T[], matches: (item: T) => boolean, what: string): T {
  const found = items.find(matches);
  if (!found) throw new Error(`no ${what} in results.json`);
  return found;
}
