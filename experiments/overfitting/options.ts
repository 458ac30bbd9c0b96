/** The overfitting experiment's flags, their defaults and the `--quick` settings. */
import {
  expectClassBalanced,
  expectIntegers,
  parseWithQuick,
  poolFlags,
  SEED_FLAGS,
  selectConfigIds,
} from '../lib/options';
import { BASELINE, CONFIGS } from './configs';

export const DEFAULTS = {
  ...SEED_FLAGS,
  seeds: 5,
  epochs: 20,
  trainSize: 1000,
  heldOutSize: 1000,
  /** Validation digits (disjoint from both) that select the epoch; the held-out set is the test. */
  validationSize: 500,
  hidden: 256,
  batchSize: 64,
  learningRate: 1e-3,
  rate: 0.5,
  l2: 5e-4,
  mcSamples: 30,
  ...poolFlags('reports/overfitting'),
};

/** What `--quick` changes (any flag given explicitly still wins). */
export const QUICK = {
  seeds: 1,
  epochs: 20,
  trainSize: 300,
  hidden: 128,
  batchSize: 32,
  learningRate: 3e-3,
  mcSamples: 10,
  validationSize: 300,
};

const USAGE = `Overfitting on small MNIST: dropout variants vs BatchNorm vs L2, with Monte-Carlo uncertainty.
Usage: npx tsx experiments/overfitting/main.ts [flags]   (--quick: ${JSON.stringify(QUICK)})
--configs takes a comma-separated subset of: ${CONFIGS.map((c) => c.id).join(', ')} (baseline always runs).`;

/** When the report calls the baseline overfitting: train acc ≥ trainAcc, final/min held-out loss > lossRatio. */
export const OVERFIT = { trainAcc: 0.98, lossRatio: 1.1 };

/** Parses the flags; `--quick` replaces the defaults it names. */
export function parseOptions(argv: readonly string[]) {
  const o = parseWithQuick(DEFAULTS, QUICK, argv, USAGE);
  expectIntegers('overfitting', o, {
    seeds: 1,
    epochs: 2,
    hidden: 1,
    batchSize: 1,
    mcSamples: 2,
    jobs: 1,
  });
  expectClassBalanced('overfitting', o, 'trainSize');
  expectClassBalanced('overfitting', o, 'heldOutSize', 1000);
  expectClassBalanced('overfitting', o, 'validationSize');
  if (!(o.rate > 0 && o.rate < 1)) {
    throw new Error(`overfitting: expected --rate in (0, 1), received: ${o.rate}.`);
  }
  return o;
}

/** The parsed flags. */
export type Options = ReturnType<typeof parseOptions>;

/** The configurations `--configs` names (all by default), the baseline always among them. */
export function selectedConfigs(o: Options) {
  const ids = selectConfigIds('overfitting', CONFIGS, o.configs);
  return CONFIGS.filter((c) => c.id === BASELINE || ids.includes(c.id));
}
