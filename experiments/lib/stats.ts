/**
 * Statistics for the experiments, pure functions on plain numbers (no tfjs, so tests load them
 * directly): mean ± sample std over seeds, paired comparisons against a reference with the
 * seed-to-seed spread, agreement of two configurations, histograms and AUROC.
 */
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

/** Outcome of comparing a configuration with a reference on one metric. */
export type Verdict = 'better' | 'worse' | 'within spread';

/** One claim of an experiment, its verdict and the numbers behind it. */
export interface Claim {
  claim: string;
  /** 'holds', 'does not hold', or 'not measured' (a configuration it needs did not run). */
  verdict: 'holds' | 'does not hold' | 'not measured';
  evidence: string;
}

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
  /** Seed-to-seed spread of the difference: the sample std of d_s (0 with one seed). */
  spread: number;
  verdict: Verdict;
  /** True when there is a single seed: the verdict is then the bare sign of delta. */
  singleSeed: boolean;
}

/**
 * Compares `a` with `b` seed by seed: `better`/`worse` when the mean difference is larger than the
 * seed-to-seed spread of the differences in the good/bad direction, else `within spread`. (With n
 * seeds that is t = mean/(std/√n) > √n: for 3 seeds, t > 1.73.) With one seed there is no spread
 * and any non-zero difference decides (flagged by `singleSeed`).
 */
export function compare(a: Stat, b: Stat, better: 'higher' | 'lower'): Comparison {
  if (a.values.length !== b.values.length) {
    throw new Error(
      `compare: expected one value per seed on both sides, received ${a.values.length} and ${b.values.length}.`,
    );
  }
  const differences = a.values.map((v, i) => v - b.values[i]);
  const d = meanStd(differences);
  const singleSeed = differences.length < 2;
  const spread = singleSeed ? 0 : d.std;
  const gain = better === 'higher' ? d.mean : -d.mean;
  const verdict: Verdict = gain > spread ? 'better' : gain < -spread ? 'worse' : 'within spread';
  return { delta: d.mean, differences, spread, verdict, singleSeed };
}

/** Whether two configurations agree on a metric within the seed-to-seed spread. */
export interface Agreement<K extends string = string> {
  a: string;
  b: string;
  metric: K;
  /** a.mean − b.mean. */
  delta: number;
  /** √(std_a² + std_b²): the seed-to-seed spread of one run of each (0 with one seed). */
  spread: number;
  /** |delta| ≤ spread. */
  agree: boolean;
  /** The per-seed (paired) differences a_s − b_s, for the record. */
  differences: number[];
  singleSeed: boolean;
}

/**
 * Agreement of `a` and `b` on `metric`: |a.mean − b.mean| ≤ √(std_a² + std_b²), i.e. the two differ
 * by no more than two runs of one configuration typically do. With one seed there is no spread:
 * `agree` is then false unless the values are identical, and `singleSeed` says so.
 */
export function agreement<K extends string>(
  aId: string,
  a: Record<K, Stat>,
  bId: string,
  b: Record<K, Stat>,
  metric: K,
): Agreement<K> {
  const sa = a[metric];
  const sb = b[metric];
  const singleSeed = sa.n < 2 || sb.n < 2;
  const delta = sa.mean - sb.mean;
  const spread = singleSeed ? 0 : Math.sqrt(sa.std ** 2 + sb.std ** 2);
  return {
    a: aId,
    b: bId,
    metric,
    delta,
    spread,
    agree: Math.abs(delta) <= spread,
    differences: sa.values.map((v, i) => v - sb.values[i]),
    singleSeed,
  };
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
