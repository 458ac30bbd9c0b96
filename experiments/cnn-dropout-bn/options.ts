/** The CNN experiment's flags, their defaults and the `--quick` settings. */
import * as os from 'os';
import { parseArgs } from '../lib/cli';
import { CONFIGS } from './configs';

/** Flags and defaults: 3 seeds of every configuration. */
export const DEFAULTS = {
  quick: false,
  seeds: 3,
  firstSeed: 1,
  epochs: 6,
  trainSize: 1000,
  heldOutSize: 1000,
  filters1: 8,
  filters2: 16,
  dense: 64,
  batchSize: 32,
  learningRate: 2e-3,
  rate: 0.5,
  spatialRate: 0.1,
  blockSize: 3,
  bnMomentum: 0.9,
  inputPool: 1,
  configs: '',
  jobs: Math.min(4, Math.max(1, os.cpus().length)),
  backend: '',
  out: 'reports/cnn-dropout-bn',
  /** Internal: run as a pool worker (see ../lib/pool.ts). */
  worker: false,
};

/**
 * What `--quick` changes (any flag given explicitly still wins): one seed of a smaller net on
 * digits downsampled to 14×14, a smoke run.
 */
export const QUICK = {
  seeds: 1,
  epochs: 2,
  trainSize: 200,
  heldOutSize: 200,
  filters1: 4,
  filters2: 8,
  dense: 32,
  learningRate: 5e-3,
  inputPool: 2,
};

const USAGE = `Dropout vs BatchNorm in a small CNN on MNIST: placements, the redundant bias, the variance shift.
Usage: npm run experiment:cnn-dropout-bn -- [flags]   (--quick: ${JSON.stringify(QUICK)})
--configs takes a comma-separated subset of: ${CONFIGS.map((c) => c.id).join(', ')}.`;

/** Parses the flags; `--quick` replaces the defaults it names. */
export function parseOptions(argv: readonly string[]) {
  const first = parseArgs(DEFAULTS, argv, { usage: USAGE });
  const o = first.quick ? parseArgs({ ...DEFAULTS, ...QUICK }, argv, { usage: USAGE }) : first;
  const positive = [
    'seeds',
    'epochs',
    'filters1',
    'filters2',
    'dense',
    'batchSize',
    'jobs',
    'inputPool',
  ] as const;
  for (const name of positive) {
    if (!Number.isInteger(o[name]) || o[name] < 1) {
      throw new Error(`cnn-dropout-bn: expected --${name} an integer ≥ 1, received: ${o[name]}.`);
    }
  }
  for (const name of ['trainSize', 'heldOutSize'] as const) {
    if (o[name] % 10 !== 0 || o[name] < 10) {
      throw new Error(
        `cnn-dropout-bn: expected --${name} a multiple of 10 (class-balanced), received: ${o[name]}.`,
      );
    }
  }
  if (!(o.bnMomentum >= 0 && o.bnMomentum < 1)) {
    throw new Error(`cnn-dropout-bn: expected --bn-momentum in [0, 1), received: ${o.bnMomentum}.`);
  }
  return o;
}

/** The parsed flags. */
export type Options = ReturnType<typeof parseOptions>;

/** The configurations `--configs` names (all by default), in report order. */
export function selectedConfigs(o: Options): string[] {
  if (o.configs === '') return CONFIGS.map((c) => c.id);
  const wanted = o.configs.split(',').map((s) => s.trim());
  const unknown = wanted.filter((id) => !CONFIGS.some((c) => c.id === id));
  if (unknown.length > 0) {
    throw new Error(
      `cnn-dropout-bn: unknown configuration(s) ${unknown.join(', ')} in --configs; known: ` +
        CONFIGS.map((c) => c.id).join(', '),
    );
  }
  return CONFIGS.map((c) => c.id).filter((id) => wanted.includes(id));
}
