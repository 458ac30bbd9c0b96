/** The small-batch experiment's flags, their defaults and the `--quick` settings. */
import * as os from 'os';
import { parseArgs } from '../lib/cli';
import { CONFIGS } from './configs';

/** Flags and defaults: 3 seeds of every configuration in every setting. */
export const DEFAULTS = {
  quick: false,
  seeds: 3,
  firstSeed: 1,
  /** Optimizer steps per run, whatever the batch size. */
  steps: 300,
  trainSize: 2000,
  heldOutSize: 1000,
  batchSizes: '2,4,8,32',
  /** Batch size of the non-i.i.d. stream (two classes per batch); 0 leaves it out. */
  nonIidBatch: 32,
  filters1: 8,
  filters2: 16,
  dense: 32,
  inputPool: 2,
  learningRate: 1e-3,
  /** Momentum of every BN's running statistics, and of Batch Renorm's (see the report). */
  bnMomentum: 0.95,
  virtualBatchSize: 8,
  rmax: 3,
  dmax: 5,
  /** Batches per BN for the train/inference output gap. */
  gapBatches: 8,
  configs: '',
  jobs: Math.min(4, Math.max(1, os.cpus().length)),
  backend: '',
  out: 'reports/small-batch',
  /** Internal: run as a pool worker (see ../lib/pool.ts). */
  worker: false,
};

/**
 * What `--quick` changes (any flag given explicitly still wins): one seed, fewer steps and
 * digits, a smaller net, batch sizes 2 and 32 and the two-class stream: a smoke run.
 */
export const QUICK = {
  seeds: 1,
  steps: 40,
  trainSize: 300,
  heldOutSize: 200,
  batchSizes: '2,32',
  filters1: 4,
  filters2: 8,
  dense: 16,
  gapBatches: 2,
};

const USAGE = `Batch Renormalization, Ghost BatchNorm and running statistics at small batch sizes and on a non-i.i.d. stream (MNIST CNN).
Usage: npm run experiment:small-batch -- [flags]   (--quick: ${JSON.stringify(QUICK)})
--configs takes a comma-separated subset of: ${CONFIGS.map((c) => c.id).join(', ')}.`;

/** Parses the flags; `--quick` replaces the defaults it names. */
export function parseOptions(argv: readonly string[]) {
  const first = parseArgs(DEFAULTS, argv, { usage: USAGE });
  const o = first.quick ? parseArgs({ ...DEFAULTS, ...QUICK }, argv, { usage: USAGE }) : first;
  const positive = [
    'seeds',
    'steps',
    'filters1',
    'filters2',
    'dense',
    'jobs',
    'inputPool',
    'gapBatches',
  ] as const;
  for (const name of positive) {
    if (!Number.isInteger(o[name]) || o[name] < 1) {
      throw new Error(`small-batch: expected --${name} an integer ≥ 1, received: ${o[name]}.`);
    }
  }
  for (const name of ['trainSize', 'heldOutSize'] as const) {
    if (o[name] % 10 !== 0 || o[name] < 10) {
      throw new Error(
        `small-batch: expected --${name} a multiple of 10 (class-balanced), received: ${o[name]}.`,
      );
    }
  }
  const batchSizes = o.batchSizes
    .split(',')
    .filter((s) => s.trim() !== '')
    .map(Number);
  if (batchSizes.some((b) => !Number.isInteger(b) || b < 2)) {
    throw new Error(
      `small-batch: expected --batch-sizes integers ≥ 2, received: ${JSON.stringify(o.batchSizes)}.`,
    );
  }
  if (!(Number.isInteger(o.nonIidBatch) && (o.nonIidBatch === 0 || o.nonIidBatch % 2 === 0))) {
    throw new Error(
      `small-batch: expected --non-iid-batch an even integer (half a batch per class) or 0, received: ${o.nonIidBatch}.`,
    );
  }
  if (!(Number.isInteger(o.virtualBatchSize) && o.virtualBatchSize >= 2)) {
    throw new Error(
      `small-batch: expected --virtual-batch-size an integer ≥ 2, received: ${o.virtualBatchSize}.`,
    );
  }
  if (!(o.bnMomentum >= 0 && o.bnMomentum < 1)) {
    throw new Error(`small-batch: expected --bn-momentum in [0, 1), received: ${o.bnMomentum}.`);
  }
  return { ...o, batchSizeList: batchSizes };
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
      `small-batch: unknown configuration(s) ${unknown.join(', ')} in --configs; known: ` +
        CONFIGS.map((c) => c.id).join(', '),
    );
  }
  return CONFIGS.map((c) => c.id).filter((id) => wanted.includes(id));
}
