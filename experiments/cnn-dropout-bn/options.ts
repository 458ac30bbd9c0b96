/** The CNN experiment's flags, their defaults and the `--quick` settings. */
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

/** Flags and defaults: 5 seeds of every configuration. */
export const DEFAULTS = {
  ...SEED_FLAGS,
  seeds: 5,
  epochs: 6,
  trainSize: 1000,
  heldOutSize: 1000,
  /** Validation digits (disjoint) that select the epoch of the 'at the selected epoch' numbers. */
  validationSize: 500,
  filters1: 8,
  filters2: 16,
  dense: 64,
  batchSize: 32,
  learningRate: 2e-3,
  rate: 0.5,
  spatialRate: 0.1,
  blockSize: 3,
  bnMomentum: 0.9,
  uoutBeta: 0.5,
  inputPool: 2,
  ...poolFlags('reports/cnn-dropout-bn'),
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
  validationSize: 100,
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
  const o = parseWithQuick(DEFAULTS, QUICK, argv, USAGE);
  expectIntegers('cnn-dropout-bn', o, {
    seeds: 1,
    epochs: 1,
    filters1: 1,
    filters2: 1,
    dense: 1,
    batchSize: 1,
    jobs: 1,
    inputPool: 1,
  });
  expectClassBalanced('cnn-dropout-bn', o, 'trainSize');
  expectClassBalanced('cnn-dropout-bn', o, 'heldOutSize');
  expectClassBalanced('cnn-dropout-bn', o, 'validationSize');
  expectBnMomentum('cnn-dropout-bn', o.bnMomentum);
  if (!(o.uoutBeta >= 0 && o.uoutBeta < 1)) {
    throw new Error(`cnn-dropout-bn: expected --uout-beta in [0, 1), received: ${o.uoutBeta}.`);
  }
  return o;
}

/** The parsed flags. */
export type Options = ReturnType<typeof parseOptions>;

/** The configurations `--configs` names (all by default), in report order. */
export function selectedConfigs(o: Options): string[] {
  return selectConfigIds('cnn-dropout-bn', CONFIGS, o.configs);
}
