/**
 * Learning curves of classification runs and the metrics taken from them: per-epoch loss and
 * accuracy on the training and held-out sets (inference mode), the final and best values, the
 * train–held-out gaps, and their mean ± std over seeds.
 */
import { meanStd, Stat, stat } from './stats';

/** What one run records per epoch (inference mode, data term of the loss only). */
export interface CurvePoint {
  trainLoss: number;
  trainAcc: number;
  heldOutLoss: number;
  heldOutAcc: number;
  /** On the validation digits, when the run has them (they select the epoch). */
  valLoss?: number;
  valAcc?: number;
}

/** The metrics of one run that the report aggregates over seeds. */
export interface RunMetrics {
  /** Held-out accuracy after the last epoch. */
  finalHeldOutAcc: number;
  /** Held-out accuracy at the selected epoch ({@link RunMetrics.bestLossEpoch}). */
  bestHeldOutAcc: number;
  /** Training accuracy after the last epoch. */
  finalTrainAcc: number;
  /** Training loss after the last epoch. */
  finalTrainLoss: number;
  /** Held-out loss after the last epoch. */
  finalHeldOutLoss: number;
  /** Held-out loss at the selected epoch. */
  minHeldOutLoss: number;
  /**
   * The selected epoch (1-based): that of the lowest validation loss when the run has validation
   * digits, else of the lowest held-out loss (selection on the test set: optimistic).
   */
  bestLossEpoch: number;
  /** Final held-out − train loss. */
  lossGap: number;
  /** Final train − held-out accuracy. */
  accGap: number;
  /** Final held-out loss / its minimum: 1 means it never rose again. */
  overfitRatio: number;
}

/** Keys of {@link RunMetrics}. */
export type MetricKey = keyof RunMetrics;

/** How the report shows a metric, and which direction is better (null: descriptive only). */
export interface MetricInfo {
  key: MetricKey;
  label: string;
  short: string;
  better: 'higher' | 'lower' | null;
}

/** Every metric, in table order. */
export const METRICS: readonly MetricInfo[] = [
  {
    key: 'finalHeldOutAcc',
    label: 'final held-out accuracy',
    short: 'held-out acc',
    better: 'higher',
  },
  {
    key: 'bestHeldOutAcc',
    label: 'held-out accuracy at the selected epoch',
    short: 'held-out acc at sel. epoch',
    better: 'higher',
  },
  { key: 'finalTrainAcc', label: 'final train accuracy', short: 'train acc', better: null },
  { key: 'finalTrainLoss', label: 'final train loss', short: 'train loss', better: null },
  {
    key: 'finalHeldOutLoss',
    label: 'final held-out loss',
    short: 'held-out loss',
    better: 'lower',
  },
  {
    key: 'minHeldOutLoss',
    label: 'held-out loss at the selected epoch',
    short: 'held-out loss at sel. epoch',
    better: 'lower',
  },
  { key: 'lossGap', label: 'loss gap (held-out − train)', short: 'loss gap', better: 'lower' },
  { key: 'accGap', label: 'accuracy gap (train − held-out)', short: 'acc gap', better: 'lower' },
  {
    key: 'bestLossEpoch',
    label: 'selected epoch (lowest validation loss)',
    short: 'sel. epoch',
    better: null,
  },
  {
    key: 'overfitRatio',
    label: 'final / selected-epoch held-out loss',
    short: 'final/sel. loss',
    better: null,
  },
];

/** How the report shows `key`. */
export function metricInfo(key: MetricKey): MetricInfo {
  return METRICS.find((m) => m.key === key) as MetricInfo;
}

/** The metrics of one run from its per-epoch curve. */
export function runMetrics(curve: readonly CurvePoint[]): RunMetrics {
  if (curve.length === 0) throw new Error('runMetrics: expected at least one epoch.');
  const last = curve[curve.length - 1];
  // Select on the validation digits when there are any (Keras' ModelCheckpoint(save_best_only)
  // on val_loss), so that the held-out (test) numbers at that epoch are not chosen on the test set.
  const select = (p: CurvePoint) => p.valLoss ?? p.heldOutLoss;
  let best = 0;
  curve.forEach((p, i) => {
    if (select(p) < select(curve[best])) best = i;
  });
  const minHeldOutLoss = curve[best].heldOutLoss;
  return {
    finalHeldOutAcc: last.heldOutAcc,
    bestHeldOutAcc: curve[best].heldOutAcc,
    finalTrainAcc: last.trainAcc,
    finalTrainLoss: last.trainLoss,
    finalHeldOutLoss: last.heldOutLoss,
    minHeldOutLoss,
    bestLossEpoch: best + 1,
    lossGap: last.heldOutLoss - last.trainLoss,
    accGap: last.trainAcc - last.heldOutAcc,
    overfitRatio: last.heldOutLoss / minHeldOutLoss,
  };
}

export type ConfigStats = Record<MetricKey, Stat>;

/** Aggregates the runs of one configuration. */
export function aggregate(runs: readonly RunMetrics[]): ConfigStats {
  const out = {} as ConfigStats;
  for (const { key } of METRICS) out[key] = stat(runs.map((r) => r[key]));
  return out;
}

/** Mean over runs of each epoch's curve point (all runs have the same number of epochs). */
export function meanCurve(curves: readonly (readonly CurvePoint[])[]): CurvePoint[] {
  const epochs = Math.min(...curves.map((c) => c.length));
  return Array.from({ length: epochs }, (_, e) => {
    const at = (k: keyof CurvePoint) => meanStd(curves.map((c) => c[e][k] ?? NaN)).mean;
    return {
      trainLoss: at('trainLoss'),
      trainAcc: at('trainAcc'),
      heldOutLoss: at('heldOutLoss'),
      heldOutAcc: at('heldOutAcc'),
    };
  });
}
