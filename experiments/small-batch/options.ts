/** The small-batch experiment's flags, their defaults and the `--quick` settings. */
import {
  expectBnMomentum,
  expectClassBalanced,
  expectIntegers,
  parseWithQuick,
  poolFlags,
  SEED_FLAGS,
  selectConfigIds,
} from '../lib/options';
import { CONFIGS } from './configs';

/** Flags and defaults: 5 seeds of every configuration in every setting. */
export const DEFAULTS = {
  ...SEED_FLAGS,
  seeds: 5,
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
  virtualBatchSize: 4,
  rmax: 3,
  dmax: 5,
  /** Batches per BN for the train/inference output gap. */
  gapBatches: 8,
  ...poolFlags('reports/small-batch'),
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
  const o = parseWithQuick(DEFAULTS, QUICK, argv, USAGE);
  expectIntegers('small-batch', o, {
    seeds: 1,
    steps: 1,
    filters1: 1,
    filters2: 1,
    dense: 1,
    jobs: 1,
    inputPool: 1,
    gapBatches: 1,
    virtualBatchSize: 2,
  });
  expectClassBalanced('small-batch', o, 'trainSize');
  expectClassBalanced('small-batch', o, 'heldOutSize');
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
  expectBnMomentum('small-batch', o.bnMomentum);
  return { ...o, batchSizeList: batchSizes };
}

/** The parsed flags. */
export type Options = ReturnType<typeof parseOptions>;

/** The configurations `--configs` names (all by default), in report order. */
export function selectedConfigs(o: Options): string[] {
  return selectConfigIds('small-batch', CONFIGS, o.configs);
}
