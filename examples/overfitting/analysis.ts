/**
 * The numbers side of the overfitting experiment, pure functions with no tfjs and no charts (so
 * tests can load them): per-run metrics, mean ± std over seeds, comparisons against the baseline
 * with the seed-to-seed spread, Monte-Carlo entropy statistics, and the interpretation text, which
 * is written only from these numbers.
 */
import { fmt, meanStd } from '../lib/report';

/** What one run records per epoch (inference mode, data term of the loss only). */
export interface CurvePoint {
  trainLoss: number;
  trainAcc: number;
  heldOutLoss: number;
  heldOutAcc: number;
}

/** The metrics of one run that the report aggregates over seeds. */
export interface RunMetrics {
  /** Held-out accuracy after the last epoch. */
  finalHeldOutAcc: number;
  /** Highest held-out accuracy over the epochs. */
  bestHeldOutAcc: number;
  /** Training accuracy after the last epoch. */
  finalTrainAcc: number;
  /** Training loss after the last epoch. */
  finalTrainLoss: number;
  /** Held-out loss after the last epoch. */
  finalHeldOutLoss: number;
  /** Lowest held-out loss over the epochs. */
  minHeldOutLoss: number;
  /** Epoch (1-based) of the lowest held-out loss. */
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
    label: 'best held-out accuracy',
    short: 'best held-out acc',
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
    label: 'minimum held-out loss',
    short: 'min held-out loss',
    better: 'lower',
  },
  { key: 'lossGap', label: 'loss gap (held-out − train)', short: 'loss gap', better: 'lower' },
  { key: 'accGap', label: 'accuracy gap (train − held-out)', short: 'acc gap', better: 'lower' },
  {
    key: 'bestLossEpoch',
    label: 'epoch of the minimum held-out loss',
    short: 'best epoch',
    better: null,
  },
  {
    key: 'overfitRatio',
    label: 'final / minimum held-out loss',
    short: 'final/min loss',
    better: null,
  },
];

/** The metrics of one run from its per-epoch curve. */
export function runMetrics(curve: readonly CurvePoint[]): RunMetrics {
  if (curve.length === 0) throw new Error('runMetrics: expected at least one epoch.');
  const last = curve[curve.length - 1];
  let best = 0;
  curve.forEach((p, i) => {
    if (p.heldOutLoss < curve[best].heldOutLoss) best = i;
  });
  const minHeldOutLoss = curve[best].heldOutLoss;
  return {
    finalHeldOutAcc: last.heldOutAcc,
    bestHeldOutAcc: Math.max(...curve.map((p) => p.heldOutAcc)),
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

/** Every metric of a configuration as mean ± std over its runs. */
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
    const at = (k: keyof CurvePoint) => meanStd(curves.map((c) => c[e][k])).mean;
    return {
      trainLoss: at('trainLoss'),
      trainAcc: at('trainAcc'),
      heldOutLoss: at('heldOutLoss'),
      heldOutAcc: at('heldOutAcc'),
    };
  });
}

/** Outcome of comparing a configuration with a reference on one metric. */
export type Verdict = 'better' | 'worse' | 'within spread';

/** A comparison of `a` (a configuration) with `b` (the reference) on one metric. */
export interface Comparison {
  /** a.mean − b.mean. */
  delta: number;
  /**
   * Seed-to-seed spread of a difference: √(std_a² + std_b²), the standard deviation of a − b for
   * one run of each. 0 when either side has a single seed.
   */
  spread: number;
  verdict: Verdict;
  /** True when either side has fewer than two seeds: the verdict is then the bare sign of delta. */
  singleSeed: boolean;
}

/**
 * Compares `a` with `b`: `better`/`worse` when the difference of means exceeds the seed-to-seed
 * spread in the good/bad direction, otherwise `within spread`. With one seed there is no spread,
 * and any non-zero difference decides (flagged by `singleSeed`).
 */
export function compare(a: Stat, b: Stat, better: 'higher' | 'lower'): Comparison {
  const delta = a.mean - b.mean;
  const singleSeed = a.n < 2 || b.n < 2;
  const spread = singleSeed ? 0 : Math.sqrt(a.std ** 2 + b.std ** 2);
  const gain = better === 'higher' ? delta : -delta;
  const verdict: Verdict = gain > spread ? 'better' : gain < -spread ? 'worse' : 'within spread';
  return { delta, spread, verdict, singleSeed };
}

/** Whether two configurations' held-out accuracies agree within the seed-to-seed spread. */
export interface Agreement {
  a: string;
  b: string;
  metric: MetricKey;
  delta: number;
  spread: number;
  agree: boolean;
  singleSeed: boolean;
}

/**
 * Agreement of `a` and `b` on `metric`: |Δ mean| ≤ √(std_a² + std_b²). With one seed there is no
 * spread to judge by; `agree` is then false unless the values are identical, and `singleSeed` says so.
 */
export function agreement(
  aId: string,
  a: ConfigStats,
  bId: string,
  b: ConfigStats,
  metric: MetricKey,
): Agreement {
  const c = compare(a[metric], b[metric], 'higher');
  return {
    a: aId,
    b: bId,
    metric,
    delta: c.delta,
    spread: c.spread,
    agree: c.verdict === 'within spread',
    singleSeed: c.singleSeed,
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

/** "0.904 ± 0.004" (3 significant digits; the ± part only with more than one seed). */
export function showStat(s: Stat): string {
  return s.n > 1 ? `${fmt(s.mean)} ± ${fmt(s.std)}` : fmt(s.mean);
}

/** What the interpretation needs to know about the run. */
export interface InterpretationInput {
  /** Configurations in report order; the baseline is `baseline`. */
  configs: readonly { id: string; label: string; dropoutFamily: boolean }[];
  baseline: string;
  stats: Record<string, ConfigStats>;
  /** Seeds per configuration. */
  seeds: number;
  epochs: number;
  /** The two configurations whose held-out accuracies must agree (pack inverted vs built-in). */
  agreements: readonly Agreement[];
  mc?: { mc: EntropySummary; deterministic: EntropySummary; samples: number; config: string };
  /** Overfitting criteria of the baseline (the test's): train acc ≥ this, final/min loss > that. */
  overfit: { trainAcc: number; lossRatio: number };
}

const COMPARED: readonly MetricKey[] = [
  'finalHeldOutAcc',
  'bestHeldOutAcc',
  'finalHeldOutLoss',
  'minHeldOutLoss',
  'lossGap',
  'accGap',
];

function metricInfo(key: MetricKey): MetricInfo {
  return METRICS.find((m) => m.key === key) as MetricInfo;
}

function labelOf(input: InterpretationInput, id: string): string {
  return input.configs.find((c) => c.id === id)?.label ?? id;
}

/** Per configuration and compared metric, the verdict against the baseline. */
export function verdicts(
  input: Pick<InterpretationInput, 'configs' | 'baseline' | 'stats'>,
): Record<string, Record<string, Comparison>> {
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
 * The report's interpretation, as markdown paragraphs. Every statement is derived from the numbers
 * passed in; nothing is assumed about which configuration wins.
 */
export function interpret(input: InterpretationInput): string[] {
  const { stats, baseline } = input;
  const base = stats[baseline];
  const paragraphs: string[] = [];
  const single = input.seeds < 2;
  const rule = single
    ? 'With a single seed there is no seed-to-seed spread: "beats" below means only that the number is better, ' +
      'by however little. Run with `--seeds 3` or more for a verdict that accounts for noise.'
    : `"Beats" means the difference of the means over ${input.seeds} seeds is larger than the seed-to-seed ` +
      'spread √(std₁² + std₂²); smaller differences are reported as within the spread, i.e. not a win.';
  paragraphs.push(rule);

  const trainAcc = base.finalTrainAcc.mean;
  const ratio = base.finalHeldOutLoss.mean / base.minHeldOutLoss.mean;
  const overfits = trainAcc >= input.overfit.trainAcc && ratio > input.overfit.lossRatio;
  paragraphs.push(
    `**Baseline.** Without regularization the MLP reaches train accuracy ${showStat(base.finalTrainAcc)} ` +
      `and train loss ${showStat(base.finalTrainLoss)}. Its held-out loss is lowest at epoch ` +
      `${showStat(base.bestLossEpoch)} (${showStat(base.minHeldOutLoss)}) and ends at ` +
      `${showStat(base.finalHeldOutLoss)}, ${fmt(ratio)}× its minimum, with a loss gap of ` +
      `${showStat(base.lossGap)} and an accuracy gap of ${showStat(base.accGap)}. ` +
      (overfits
        ? `It overfits: it memorizes the training set (train accuracy ≥ ${input.overfit.trainAcc}) while its ` +
          `held-out loss rises again after its minimum (final > ${input.overfit.lossRatio}× minimum).`
        : `By this report's criterion (train accuracy ≥ ${input.overfit.trainAcc} and final held-out loss > ` +
          `${input.overfit.lossRatio}× its minimum) it does **not** clearly overfit in ${input.epochs} epochs, ` +
          'so the regularizers have little to fix here.'),
  );

  const others = input.configs.filter((c) => c.id !== baseline);
  const best = (key: MetricKey, dir: 'higher' | 'lower') =>
    [...input.configs].sort((a, b) =>
      dir === 'higher'
        ? stats[b.id][key].mean - stats[a.id][key].mean
        : stats[a.id][key].mean - stats[b.id][key].mean,
    )[0];
  const bestLoss = best('minHeldOutLoss', 'lower');
  const bestAcc = best('bestHeldOutAcc', 'higher');
  const bestFinal = best('finalHeldOutLoss', 'lower');
  const smallestGap = best('lossGap', 'lower');
  paragraphs.push(
    `**Leaders.** Lowest minimum held-out loss: ${bestLoss.label} (${showStat(stats[bestLoss.id].minHeldOutLoss)}). ` +
      `Lowest final held-out loss: ${bestFinal.label} (${showStat(stats[bestFinal.id].finalHeldOutLoss)}). ` +
      `Highest best held-out accuracy: ${bestAcc.label} (${showStat(stats[bestAcc.id].bestHeldOutAcc)}). ` +
      `Smallest loss gap: ${smallestGap.label} (${showStat(stats[smallestGap.id].lossGap)}).`,
  );

  const v = verdicts(input);
  const lines: string[] = [];
  for (const c of others) {
    const wins = COMPARED.filter((k) => v[c.id][k].verdict === 'better');
    const ties = COMPARED.filter((k) => v[c.id][k].verdict === 'within spread');
    const losses = COMPARED.filter((k) => v[c.id][k].verdict === 'worse');
    const show = (k: MetricKey) =>
      `${metricInfo(k).label} (${showStat(stats[c.id][k])} vs ${showStat(base[k])})`;
    const parts: string[] = [];
    parts.push(
      wins.length > 0
        ? `beats the baseline on ${wins.map(show).join(', ')}`
        : 'beats the baseline on **no** compared metric',
    );
    if (ties.length + losses.length > 0) {
      const not: string[] = [];
      if (ties.length > 0)
        not.push(`${ties.map(show).join(', ')} (within the seed-to-seed spread)`);
      if (losses.length > 0) not.push(`${losses.map(show).join(', ')} (worse than the baseline)`);
      parts.push(`does **not** beat it on ${not.join('; ')}`);
    }
    const epochShift =
      stats[c.id].bestLossEpoch.mean > base.bestLossEpoch.mean
        ? `its held-out loss bottoms out later (epoch ${showStat(stats[c.id].bestLossEpoch)} vs ${showStat(base.bestLossEpoch)})`
        : stats[c.id].bestLossEpoch.mean < base.bestLossEpoch.mean
          ? `its held-out loss bottoms out earlier (epoch ${showStat(stats[c.id].bestLossEpoch)} vs ${showStat(base.bestLossEpoch)})`
          : `its held-out loss bottoms out at the same epoch as the baseline's (${showStat(base.bestLossEpoch)})`;
    lines.push(`- **${c.label}** ${parts.join('; ')}; ${epochShift}.`);
  }
  paragraphs.push(
    `**Each configuration against the baseline** (on ${COMPARED.map((k) => metricInfo(k).label).join(', ')}):\n\n` +
      lines.join('\n'),
  );

  const dropoutIds = others.filter((c) => c.dropoutFamily).map((c) => c.id);
  const dropoutLosers = dropoutIds.filter((id) =>
    COMPARED.some((k) => v[id][k].verdict !== 'better'),
  );
  if (dropoutIds.length > 0) {
    const noWin = dropoutIds.filter((id) => COMPARED.every((k) => v[id][k].verdict !== 'better'));
    paragraphs.push(
      `**Dropout family.** ${dropoutIds.length - dropoutLosers.length} of ${dropoutIds.length} dropout-style ` +
        `configurations beat the baseline on every compared metric` +
        (dropoutLosers.length > 0
          ? `; ${dropoutLosers.map((id) => labelOf(input, id)).join(', ')} do${dropoutLosers.length === 1 ? 'es' : ''} not ` +
            '(see the list above for the metrics).'
          : '.') +
        (noWin.length > 0
          ? ` ${noWin.map((id) => labelOf(input, id)).join(', ')} beat${noWin.length === 1 ? 's' : ''} it on none.`
          : ''),
    );
  }

  for (const a of input.agreements) {
    const info = metricInfo(a.metric);
    const sa = stats[a.a][a.metric];
    const sb = stats[a.b][a.metric];
    paragraphs.push(
      `**${labelOf(input, a.a)} vs ${labelOf(input, a.b)}** (same configuration otherwise): ${info.label} ` +
        `${showStat(sa)} vs ${showStat(sb)}, difference ${fmt(a.delta)}. ` +
        (a.singleSeed
          ? 'With one seed there is no spread to judge agreement by; run more seeds.'
          : a.agree
            ? `They agree within the seed-to-seed spread (|Δ| ≤ ${fmt(a.spread)}).`
            : `They do **not** agree within the seed-to-seed spread (|Δ| > ${fmt(a.spread)}).`),
    );
  }

  if (input.mc) {
    const { mc, deterministic, samples } = input.mc;
    const separates = mc.meanEntropyWrong > mc.meanEntropyCorrect;
    const aurocCmp =
      mc.errorAuroc > deterministic.errorAuroc
        ? 'better than'
        : mc.errorAuroc < deterministic.errorAuroc
          ? 'worse than'
          : 'the same as';
    paragraphs.push(
      `**Monte-Carlo dropout** (${labelOf(input, input.mc.config)}, ${samples} samples per digit, all seeds pooled): ` +
        `mean predictive entropy ${fmt(mc.meanEntropyWrong)} nats on the ${mc.nWrong} wrongly classified ` +
        `held-out digits vs ${fmt(mc.meanEntropyCorrect)} on the ${mc.nCorrect} correct ones` +
        (separates
          ? ` (${fmt(mc.meanEntropyWrong / mc.meanEntropyCorrect)}× higher): the averaged prediction is less sure where it is wrong.`
          : ': the entropy does **not** flag the errors.') +
        ` As a detector of errors, entropy has AUROC ${fmt(mc.errorAuroc)} (0.5 is chance), ${aurocCmp} ` +
        `the deterministic prediction's entropy of the same model (AUROC ${fmt(deterministic.errorAuroc)}). ` +
        `MC accuracy ${fmt(mc.accuracy)} vs deterministic ${fmt(deterministic.accuracy)}.`,
    );
  }
  return paragraphs;
}
