/**
 * The numbers side of the overfitting experiment, pure functions with no tfjs and no charts (so
 * tests can load them): verdicts against the baseline with the seed-to-seed spread, and
 * Monte-Carlo entropy and mutual-information statistics. The per-run metrics are in ../lib/curves.ts; the text written
 * from all of them is in ./interpret.ts.
 */
import { fmt } from '../lib/report';
import { ConfigStats, metricInfo, MetricKey } from '../lib/curves';
import { auroc, Comparison, compare, histogramCounts, meanStd, showInterval } from '../lib/stats';

/** Entropy statistics of the Monte-Carlo (or deterministic) predictions over every seed. */
export interface EntropySummary {
  nCorrect: number;
  nWrong: number;
  accuracy: number;
  meanEntropyCorrect: number;
  meanEntropyWrong: number;
  /** How well entropy flags errors: AUROC of entropy for "wrongly classified". */
  errorAuroc: number;
  histogram: { edges: number[]; correct: number[]; wrong: number[] };
}

/** Summarizes entropies of correctly and wrongly classified digits; bins span [0, ln 10]. */
export function entropySummary(
  entropy: readonly number[],
  correct: readonly boolean[],
  bins = 20,
): EntropySummary {
  const right = entropy.filter((_, i) => correct[i]);
  const wrong = entropy.filter((_, i) => !correct[i]);
  const hi = Math.log(10);
  const hr = histogramCounts(right, bins, 0, hi);
  const hw = histogramCounts(wrong, bins, 0, hi);
  return {
    nCorrect: right.length,
    nWrong: wrong.length,
    accuracy: right.length / Math.max(1, entropy.length),
    meanEntropyCorrect: meanStd(right).mean,
    meanEntropyWrong: meanStd(wrong).mean,
    errorAuroc: auroc(
      entropy,
      correct.map((c) => !c),
    ),
    histogram: { edges: hr.edges, correct: hr.counts, wrong: hw.counts },
  };
}

/** A per-digit uncertainty on correctly and wrongly classified digits. */
export interface UncertaintySplit {
  meanCorrect: number;
  meanWrong: number;
  /** How well it flags errors: AUROC for "wrongly classified" (0.5 is chance). */
  errorAuroc: number;
}

/** Mean of `values` over correct and wrong digits, and their AUROC as an error detector. */
export function uncertaintySplit(
  values: readonly number[],
  correct: readonly boolean[],
): UncertaintySplit {
  return {
    meanCorrect: meanStd(values.filter((_, i) => correct[i])).mean,
    meanWrong: meanStd(values.filter((_, i) => !correct[i])).mean,
    errorAuroc: auroc(
      values,
      correct.map((c) => !c),
    ),
  };
}

/** The metrics on which configurations are compared with the baseline. */
export const COMPARED: readonly MetricKey[] = [
  'finalHeldOutAcc',
  'bestHeldOutAcc',
  'finalHeldOutLoss',
  'minHeldOutLoss',
  'lossGap',
  'accGap',
];

/** The configurations of a run, the baseline's id, and every configuration's statistics. */
export interface RunSummary {
  /** Configurations in report order; the baseline is `baseline`. */
  configs: readonly { id: string; label: string; dropoutFamily: boolean }[];
  baseline: string;
  stats: Record<string, ConfigStats>;
}

/** Per configuration and compared metric, the verdict against the baseline. */
export function verdicts(input: RunSummary): Record<string, Record<string, Comparison>> {
  const base = input.stats[input.baseline];
  const out: Record<string, Record<string, Comparison>> = {};
  for (const c of input.configs) {
    if (c.id === input.baseline) continue;
    out[c.id] = {};
    for (const key of COMPARED) {
      out[c.id][key] = compare(
        input.stats[c.id][key],
        base[key],
        metricInfo(key).better as 'higher' | 'lower',
      );
    }
  }
  return out;
}

/**
 * The verdicts as a table: one row per non-baseline configuration, one column per compared metric,
 * each cell the verdict and the mean per-seed difference (configuration − baseline).
 */
export function verdictTable(input: RunSummary): {
  header: string[];
  rows: string[][];
} {
  const v = verdicts(input);
  const mark = { better: 'beats', worse: 'worse', 'not separated': 'not separated' };
  return {
    header: ['configuration', ...COMPARED.map((k) => metricInfo(k).short)],
    rows: input.configs
      .filter((c) => c.id !== input.baseline)
      .map((c) => [
        c.label,
        ...COMPARED.map((k) => {
          const x = v[c.id][k];
          return x.singleSeed
            ? `${mark[x.verdict]} (${x.delta > 0 ? '+' : ''}${fmt(x.delta)}, one seed)`
            : `${mark[x.verdict]} (${x.delta > 0 ? '+' : ''}${fmt(x.delta)} ${showInterval(x.ci)})`;
        }),
      ]),
  };
}
