/**
 * The flags and checks the pooled experiments (overfitting, cnn-dropout-bn, small-batch) share:
 * seeds first, pool and output flags last, `--quick` as a set of overridden defaults, the checks
 * of their values, and `--configs` (a subset of the experiment's configurations).
 *
 * ```ts
 * const DEFAULTS = { ...SEED_FLAGS, epochs: 6, trainSize: 1000, ...poolFlags('reports/cnn') };
 * const o = parseWithQuick(DEFAULTS, { seeds: 1, epochs: 2 }, argv, USAGE);
 * expectIntegers('cnn', o, { seeds: 1, epochs: 1 });
 * ```
 */
import * as os from 'os';
import { FlagValue, kebab, parseArgs } from './cli';

/** The first flags of every pooled experiment: `--quick`, and the seeds it runs (3 from 1). */
export const SEED_FLAGS = { quick: false, seeds: 3, firstSeed: 1 };

/**
 * The last flags of every pooled experiment: `--configs` (a comma-separated subset, all by
 * default), `--jobs` (worker processes: one per core, at most 4), `--backend` ('' for the fastest
 * that loads), `--out` (the report's folder, default `out`) and the pool's internal `--worker`.
 */
export function poolFlags(out: string) {
  return {
    configs: '',
    jobs: Math.min(4, Math.max(1, os.cpus().length)),
    backend: '',
    out,
    /** Internal: run as a pool worker (see ./tasks.ts). */
    worker: false,
  };
}

/**
 * Parses `argv` against `defaults`; with `--quick`, against `defaults` with `quick`'s values
 * instead (a flag given explicitly still wins). `usage` heads `--help`.
 */
export function parseWithQuick<T extends Record<string, FlagValue>>(
  defaults: T,
  quick: Partial<T>,
  argv: readonly string[],
  usage: string,
): T {
  const first = parseArgs(defaults, argv, { usage });
  return first.quick ? parseArgs({ ...defaults, ...quick }, argv, { usage }) : first;
}

/** Throws unless each option named in `minimums` is an integer at least its minimum there. */
export function expectIntegers<T extends Record<string, unknown>>(
  experiment: string,
  o: T,
  minimums: Partial<Record<keyof T & string, number>>,
): void {
  for (const [name, min] of Object.entries(minimums) as [string, number][]) {
    const value = o[name] as number;
    if (!Number.isInteger(value) || value < min) {
      throw new Error(
        `${experiment}: expected --${kebab(name)} an integer ≥ ${min}, received: ${value}.`,
      );
    }
  }
}

/**
 * Throws unless `o[name]`, a number of MNIST digits, is a multiple of 10 (as many of each class)
 * and at least `min`.
 */
export function expectClassBalanced<T extends Record<string, unknown>>(
  experiment: string,
  o: T,
  name: keyof T & string,
  min = 10,
): void {
  const value = o[name] as number;
  if (value % 10 !== 0 || value < min) {
    throw new Error(
      `${experiment}: expected --${kebab(name)} a multiple of 10 (class-balanced)` +
        `${min > 10 ? ` and ≥ ${min}` : ''}, received: ${value}.`,
    );
  }
}

/** Throws unless `--bn-momentum` is in [0, 1). */
export function expectBnMomentum(experiment: string, bnMomentum: number): void {
  if (!(bnMomentum >= 0 && bnMomentum < 1)) {
    throw new Error(`${experiment}: expected --bn-momentum in [0, 1), received: ${bnMomentum}.`);
  }
}

/** The entry of `configs` with id `id`; an error listing the known ids if there is none. */
export function findConfig<C extends { id: string }>(
  experiment: string,
  configs: readonly C[],
  id: string,
): C {
  const config = configs.find((c) => c.id === id);
  if (!config) {
    throw new Error(
      `${experiment}: unknown configuration ${JSON.stringify(id)}; known: ${configs.map((c) => c.id).join(', ')}.`,
    );
  }
  return config;
}

/**
 * The ids `--configs` names (a comma-separated list; '' for all), in the order of `configs`; an
 * error listing the unknown ones and the known ones.
 */
export function selectConfigIds(
  experiment: string,
  configs: readonly { id: string }[],
  requested: string,
): string[] {
  const ids = configs.map((c) => c.id);
  if (requested === '') return ids;
  const wanted = requested.split(',').map((s) => s.trim());
  const unknown = wanted.filter((id) => !ids.includes(id));
  if (unknown.length > 0) {
    throw new Error(
      `${experiment}: unknown configuration(s) ${unknown.join(', ')} in --configs; known: ` +
        ids.join(', '),
    );
  }
  return ids.filter((id) => wanted.includes(id));
}
