/** The overfitting experiment's flags, their defaults and the `--quick` settings. */
import * as os from 'os';
import { parseArgs } from '../lib/cli';
import { BASELINE, CONFIGS } from './configs';

export const DEFAULTS = {
  quick: false,
  seeds: 3,
  firstSeed: 1,
  epochs: 20,
  trainSize: 1000,
  heldOutSize: 2000,
  hidden: 256,
  batchSize: 64,
  learningRate: 1e-3,
  rate: 0.5,
  l2: 5e-4,
  mcSamples: 30,
  configs: '',
  jobs: Math.min(4, Math.max(1, os.cpus().length)),
  backend: '',
  out: 'reports/overfitting',
  /** Internal: run as a pool worker (see ./pool.ts). */
  worker: false,
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
};

const USAGE = `Overfitting on small MNIST: dropout variants vs BatchNorm vs L2, with Monte-Carlo uncertainty.
Usage: npx tsx experiments/overfitting/main.ts [flags]   (--quick: ${JSON.stringify(QUICK)})
--configs takes a comma-separated subset of: ${CONFIGS.map((c) => c.id).join(', ')} (baseline always runs).`;

/** When the report calls the baseline overfitting: train acc ≥ trainAcc, final/min held-out loss > lossRatio. */
export const OVERFIT = { trainAcc: 0.98, lossRatio: 1.1 };

export function parseOptions(argv: readonly string[]) {
  const first = parseArgs(DEFAULTS, argv, { usage: USAGE });
  return first.quick ? parseArgs({ ...DEFAULTS, ...QUICK }, argv, { usage: USAGE }) : first;
}

/** The parsed flags. */
export type Options = ReturnType<typeof parseOptions>;

export function validate(o: Options): void {
  const int = (name: keyof Options, min: number) => {
    const v = o[name] as number;
    if (!Number.isInteger(v) || v < min) {
      throw new Error(`overfitting: expected --${name} an integer ≥ ${min}, received: ${v}.`);
    }
  };
  int('seeds', 1);
  int('epochs', 2);
  int('hidden', 1);
  int('batchSize', 1);
  int('mcSamples', 2);
  int('jobs', 1);
  if (o.trainSize % 10 !== 0 || o.trainSize < 10) {
    throw new Error(
      `overfitting: expected --train-size a multiple of 10 (class-balanced), received: ${o.trainSize}.`,
    );
  }
  if (o.heldOutSize % 10 !== 0 || o.heldOutSize < 2000) {
    throw new Error(
      `overfitting: expected --held-out-size a multiple of 10 and ≥ 2000, received: ${o.heldOutSize}.`,
    );
  }
  if (!(o.rate > 0 && o.rate < 1)) {
    throw new Error(`overfitting: expected --rate in (0, 1), received: ${o.rate}.`);
  }
}

export function selectedConfigs(o: Options) {
  if (o.configs === '') return CONFIGS;
  const wanted = new Set(o.configs.split(',').map((s) => s.trim()));
  for (const id of wanted) {
    if (!CONFIGS.some((c) => c.id === id)) {
      throw new Error(
        `overfitting: unknown configuration ${JSON.stringify(id)} in --configs; known: ` +
          CONFIGS.map((c) => c.id).join(', '),
      );
    }
  }
  return CONFIGS.filter((c) => c.id === BASELINE || wanted.has(c.id));
}
