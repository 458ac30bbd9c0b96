/**
 * Statistics for the experiments, pure functions on plain numbers (no tfjs, so tests load them
 * directly): mean ± sample std over seeds, paired t intervals against a reference
 * (`@stdlib/stats-ttest`), percentile bootstrap intervals (`@stdlib/random-sample`), histograms
 * and AUROC. The distributions and the resampling come from stdlib; this file is the glue.
 */
import sample from '@stdlib/random-sample';
import ttest from '@stdlib/stats-ttest';
import { fmt } from './report';

/** Mean and sample standard deviation (n − 1; 0 for a single value) of the finite `values`. */
export function meanStd(values: readonly number[]): { mean: number; std: number; n: number } {
  const finite = values.filter((v) => Number.isFinite(v));
  const n = finite.length;
  if (n === 0) return { mean: NaN, std: NaN, n: 0 };
  const mean = finite.reduce((s, v) => s + v, 0) / n;
  const ss = finite.reduce((s, v) => s + (v - mean) ** 2, 0);
  return { mean, std: n > 1 ? Math.sqrt(ss / (n - 1)) : 0, n };
}

/** Mean, sample std (0 for one value) and the values over seeds. */
export interface Stat {
  mean: number;
  std: number;
  n: number;
  values: number[];
}

/** {@link Stat} of `values`. */
export function stat(values: readonly number[]): Stat {
  const { mean, std, n } = meanStd(values);
  return { mean, std, n, values: [...values] };
}

/**
 * Outcome of comparing a configuration with a reference on one metric: `better`/`worse` when the
 * 95% paired t interval of the mean difference excludes 0, else `not separated`.
 */
export type Verdict = 'better' | 'worse' | 'not separated';

/** One claim of an experiment, its verdict and the numbers behind it. */
export interface Claim {
  claim: string;
  /** 'holds', 'does not hold', or 'not measured' (a configuration it needs did not run). */
  verdict: 'holds' | 'does not hold' | 'not measured';
  evidence: string;
}

/** The confidence of every interval the experiments report. */
export const LEVEL = 0.95;

/**
 * A paired comparison of `a` (a configuration) with `b` (the reference) on one metric. Within a
 * seed both saw the same split, initial weights and data order, so the per-seed difference
 * d_s = a_s − b_s removes what the seeds share (chiefly which digits were drawn).
 */
export interface Comparison {
  /** Mean over seeds of d_s (= a.mean − b.mean). */
  delta: number;
  /** Per-seed differences d_s. */
  differences: number[];
  /** Sample std of d_s (0 with one seed). */
  spread: number;
  /** The {@link LEVEL} paired t interval of the mean difference (null with one seed). */
  ci: [number, number] | null;
  /** Two-sided p-value of the paired t test (null with one seed). */
  pValue: number | null;
  verdict: Verdict;
  /** True when there is a single seed: no interval, the verdict is `not separated`. */
  singleSeed: boolean;
}

/**
 * The paired Student t interval of mean(a − b) at {@link LEVEL} (t = d̄ / (s_d/√n), n − 1 degrees
 * of freedom; Student 1908), computed by `@stdlib/stats-ttest`. Differences that are all equal
 * have a degenerate interval [d, d].
 */
export function pairedT(
  a: readonly number[],
  b: readonly number[],
): { ci: [number, number]; pValue: number; mean: number } {
  const d = a.map((v, i) => v - b[i]);
  const { mean, std } = meanStd(d);
  if (d.length < 2 || !d.every(Number.isFinite)) return { ci: [NaN, NaN], pValue: NaN, mean };
  if (std === 0) return { ci: [mean, mean], pValue: mean === 0 ? 1 : 0, mean };
  const r = ttest([...a], [...b], { alpha: 1 - LEVEL });
  return { ci: [r.ci[0], r.ci[1]], pValue: r.pValue, mean };
}

/** "[0.004, 0.020]", or "no interval" (one seed); `f` formats the numbers. */
export function showInterval(ci: [number, number] | null, f: (x: number) => string = fmt): string {
  return ci ? `[${f(ci[0])}, ${f(ci[1])}]` : 'no interval';
}

/**
 * Compares `a` with `b` seed by seed: `better`/`worse` when the {@link LEVEL} paired t interval of
 * the mean difference lies on the good/bad side of 0, else `not separated` (also with one seed).
 */
export function compare(a: Stat, b: Stat, better: 'higher' | 'lower'): Comparison {
  if (a.values.length !== b.values.length) {
    throw new Error(
      `compare: expected one value per seed on both sides, received ${a.values.length} and ${b.values.length}.`,
    );
  }
  const differences = a.values.map((v, i) => v - b.values[i]);
  const d = meanStd(differences);
  const { ci, pValue } = pairedT(a.values, b.values);
  const sign = better === 'higher' ? 1 : -1;
  const [lo, hi] = [sign * ci[0], sign * ci[1]];
  const finite = ci.every(Number.isFinite); // not with one seed: results.json gets nulls
  return {
    delta: d.mean,
    differences,
    spread: d.n > 1 ? d.std : 0,
    ci: finite ? ci : null,
    pValue: finite ? pValue : null,
    verdict: Math.min(lo, hi) > 0 ? 'better' : Math.max(lo, hi) < 0 ? 'worse' : 'not separated',
    singleSeed: differences.length < 2,
  };
}

/**
 * " (Δ +0.012, 95% CI [0.004, 0.020], paired t over 5 seeds)", or a note that one seed gives no
 * interval; `f` formats the numbers.
 */
export function showComparison(c: Comparison, f: (x: number) => string = fmt): string {
  if (c.singleSeed || !c.ci) return ' (one seed: no interval, not separated)';
  const sign = c.delta > 0 ? '+' : '';
  return (
    ` (Δ ${sign}${f(c.delta)}, ${Math.round(LEVEL * 100)}% CI ${showInterval(c.ci, f)}, ` +
    `paired t over ${c.differences.length} seeds${c.verdict === 'not separated' ? ': not separated' : ''})`
  );
}

/**
 * Percentile bootstrap interval (Efron & Tibshirani 1993, ch. 13) of `statistic` (default the
 * mean) at {@link LEVEL}: `resamples` resamples with replacement drawn by `@stdlib/random-sample`
 * seeded with `seed`, the interval their empirical (1 ± LEVEL)/2 quantiles (linear interpolation,
 * Hyndman & Fan type 7). Deterministic for a given seed.
 */
export function bootstrapInterval(
  values: readonly number[],
  options: { seed: number; resamples?: number; statistic?: (x: number[]) => number },
): [number, number] {
  const { seed, resamples = 2000, statistic = (x: number[]) => meanStd(x).mean } = options;
  if (values.length < 2) return [NaN, NaN];
  const draw = sample.factory({ seed });
  const stats = Array.from({ length: resamples }, () =>
    statistic(draw([...values], { size: values.length, replace: true })),
  ).sort((x, y) => x - y);
  const q = (p: number) => {
    const h = (stats.length - 1) * p;
    const lo = Math.floor(h);
    return stats[lo] + (h - lo) * ((stats[Math.min(lo + 1, stats.length - 1)] ?? 0) - stats[lo]);
  };
  return [q((1 - LEVEL) / 2), q((1 + LEVEL) / 2)];
}

/** Histogram counts over equal-width bins on [lo, hi]; the last bin includes hi. */
export function histogramCounts(
  values: readonly number[],
  bins: number,
  lo: number,
  hi: number,
): { edges: number[]; counts: number[] } {
  const edges = Array.from({ length: bins + 1 }, (_, i) => lo + ((hi - lo) * i) / bins);
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    const i = Math.min(bins - 1, Math.max(0, Math.floor(((v - lo) / (hi - lo)) * bins)));
    counts[i]++;
  }
  return { edges, counts };
}

/**
 * Area under the ROC curve of `score` as a detector of `positive` (Mann–Whitney U / (n₊·n₋), ties
 * count ½): the probability that a random positive scores higher than a random negative. 0.5 is
 * chance. NaN when a class is empty.
 */
export function auroc(score: readonly number[], positive: readonly boolean[]): number {
  const idx = score.map((s, i) => ({ s, p: positive[i] })).sort((x, y) => x.s - y.s);
  let rankSum = 0;
  let nPos = 0;
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j < idx.length && idx[j].s === idx[i].s) j++;
    const rank = (i + 1 + j) / 2;
    for (let k = i; k < j; k++) {
      if (idx[k].p) {
        rankSum += rank;
        nPos++;
      }
    }
    i = j;
  }
  const nNeg = idx.length - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  return (rankSum - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/** "0.904 ± 0.004" (3 significant digits; the ± part only with more than one seed). */
export function showStat(s: Stat): string {
  return s.n > 1 ? `${fmt(s.mean)} ± ${fmt(s.std)}` : fmt(s.mean);
}

/**
 * Two stats for a sentence "a vs b", both means with the same number of decimals: 3 significant
 * digits of the larger, more (up to 6 decimals) while the difference is smaller than one unit of
 * the last decimal, so that a reader sees which is larger; equal means print equal.
 */
export function showPair(a: Stat, b: Stat): string {
  const big = Math.max(Math.abs(a.mean), Math.abs(b.mean));
  if (!Number.isFinite(big) || big === 0 || big >= 1e5 || big < 1e-3) {
    return `${showStat(a)} vs ${showStat(b)}`;
  }
  const delta = Math.abs(a.mean - b.mean);
  const same = delta <= 1e-9 * big;
  let decimals = Math.max(0, 2 - Math.floor(Math.log10(big)));
  while (!same && decimals < 6 && delta < 10 ** -decimals) decimals++;
  const show = (s: Stat) => {
    const mean = String(Number((same ? a.mean : s.mean).toFixed(decimals)));
    return s.n > 1 ? `${mean} ± ${fmt(s.std)}` : mean;
  };
  return `${show(a)} vs ${show(b)}`;
}
