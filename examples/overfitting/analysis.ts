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
export interface Agreement {
  a: string;
  b: string;
  metric: MetricKey;
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
export function agreement(
  aId: string,
  a: ConfigStats,
  bId: string,
  b: ConfigStats,
  metric: MetricKey,
): Agreement {
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

/** Monte-Carlo summaries: pooled over seeds, and per seed for the seed-to-seed spread. */
export interface McInput {
  config: string;
  samples: number;
  mc: EntropySummary;
  deterministic: EntropySummary;
  /** Per seed, the error AUROC of MC and deterministic entropy (same seeds, same order). */
  perSeed: { seed: number; mcAuroc: number; deterministicAuroc: number }[];
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
  mc?: McInput;
  /** Overfitting criteria of the baseline (the test's): train acc ≥ this, final/min loss > that. */
  overfit: { trainAcc: number; lossRatio: number };
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
 * The verdicts as a table: one row per non-baseline configuration, one column per compared metric,
 * each cell the verdict and the mean per-seed difference (configuration − baseline).
 */
export function verdictTable(input: Pick<InterpretationInput, 'configs' | 'baseline' | 'stats'>): {
  header: string[];
  rows: string[][];
} {
  const v = verdicts(input);
  const mark = { better: 'beats', worse: 'worse', 'within spread': 'within spread' };
  return {
    header: ['configuration', ...COMPARED.map((k) => metricInfo(k).short)],
    rows: input.configs
      .filter((c) => c.id !== input.baseline)
      .map((c) => [
        c.label,
        ...COMPARED.map((k) => {
          const x = v[c.id][k];
          return `${mark[x.verdict]} (${x.delta > 0 ? '+' : ''}${fmt(x.delta)} ± ${fmt(x.spread)})`;
        }),
      ]),
  };
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
  paragraphs.push(
    single
      ? 'With a single seed there is no seed-to-seed spread: "beats" below means only that the number ' +
          'is better, by however little, and agreement cannot be judged. Run with `--seeds 3` or more ' +
          'for verdicts that account for noise.'
      : `**How to read the verdicts.** Within a seed every configuration shares the split, the initial ` +
          `weights and the data order, so a configuration is compared with the baseline seed by seed: it ` +
          `"beats" the baseline on a metric when the mean of its ${input.seeds} per-seed differences is ` +
          'better by more than the seed-to-seed spread (sample std) of those differences; otherwise the ' +
          'difference is "within the spread", which is not a win. Two implementations "agree" when their ' +
          'means differ by no more than √(std₁² + std₂²), the spread between single runs of each.',
  );

  const ratio = base.finalHeldOutLoss.mean / base.minHeldOutLoss.mean;
  const overfits =
    base.finalTrainAcc.mean >= input.overfit.trainAcc && ratio > input.overfit.lossRatio;
  paragraphs.push(
    `**Baseline.** Without regularization the MLP reaches train accuracy ${showStat(base.finalTrainAcc)} ` +
      `and train loss ${showStat(base.finalTrainLoss)}. Its held-out loss is lowest at epoch ` +
      `${showStat(base.bestLossEpoch)} (${showStat(base.minHeldOutLoss)}) and ends at ` +
      `${showStat(base.finalHeldOutLoss)}, ${fmt(ratio)}× its minimum; the final loss gap is ` +
      `${showStat(base.lossGap)} and the accuracy gap ${showStat(base.accGap)}` +
      (single
        ? '. '
        : ` (final held-out loss > ${input.overfit.lossRatio}× its minimum in ` +
          `${base.overfitRatio.values.filter((r) => r > input.overfit.lossRatio).length} of ` +
          `${base.overfitRatio.n} seeds). `) +
      (overfits
        ? `It overfits: it fits the training set (train accuracy ≥ ${input.overfit.trainAcc}) while its ` +
          `held-out loss climbs back up after its minimum (final > ${input.overfit.lossRatio}× minimum).`
        : `By this report's criterion (train accuracy ≥ ${input.overfit.trainAcc} and final held-out loss > ` +
          `${input.overfit.lossRatio}× its minimum) it does **not** clearly overfit in ${input.epochs} epochs, ` +
          'so the regularizers have little to fix here.'),
  );

  const rank = (key: MetricKey, dir: 'higher' | 'lower') =>
    [...input.configs].sort((a, b) =>
      dir === 'higher'
        ? stats[b.id][key].mean - stats[a.id][key].mean
        : stats[a.id][key].mean - stats[b.id][key].mean,
    )[0];
  const leader = (key: MetricKey, dir: 'higher' | 'lower', what: string) => {
    const c = rank(key, dir);
    return `${what}: ${c.label} (${showStat(stats[c.id][key])})`;
  };
  paragraphs.push(
    `**Leaders** (by the mean; see the verdicts for whether a lead exceeds the noise). ` +
      [
        leader('minHeldOutLoss', 'lower', 'Lowest minimum held-out loss'),
        leader('finalHeldOutLoss', 'lower', 'lowest final held-out loss'),
        leader('bestHeldOutAcc', 'higher', 'highest best held-out accuracy'),
        leader('finalHeldOutAcc', 'higher', 'highest final held-out accuracy'),
        leader('lossGap', 'lower', 'smallest loss gap'),
      ].join('; ') +
      '.',
  );

  const others = input.configs.filter((c) => c.id !== baseline);
  const v = verdicts(input);
  const lines: string[] = [];
  for (const c of others) {
    const show = (k: MetricKey) => `${metricInfo(k).label} (${showPair(stats[c.id][k], base[k])})`;
    const wins = COMPARED.filter((k) => v[c.id][k].verdict === 'better');
    const ties = COMPARED.filter((k) => v[c.id][k].verdict === 'within spread');
    const losses = COMPARED.filter((k) => v[c.id][k].verdict === 'worse');
    const parts: string[] = [
      wins.length > 0
        ? `beats the baseline on ${wins.map(show).join(', ')}`
        : 'beats the baseline on **no** compared metric',
    ];
    if (ties.length > 0) {
      parts.push(
        `does **not** beat it on ${ties.map(show).join(', ')}: within the seed-to-seed spread`,
      );
    }
    if (losses.length > 0) {
      parts.push(`is **worse** than the baseline on ${losses.map(show).join(', ')}`);
    }
    const e = stats[c.id].bestLossEpoch;
    const when =
      e.mean > base.bestLossEpoch.mean
        ? 'later'
        : e.mean < base.bestLossEpoch.mean
          ? 'earlier'
          : 'at the same epoch';
    parts.push(`its held-out loss bottoms out ${when} (epoch ${showPair(e, base.bestLossEpoch)})`);
    lines.push(`- **${c.label}** ${parts.join('; ')}.`);
  }
  paragraphs.push(
    `**Each configuration against the baseline** (compared: ${COMPARED.map((k) => metricInfo(k).label).join(', ')}):\n\n` +
      lines.join('\n'),
  );

  const family = others.filter((c) => c.dropoutFamily);
  if (family.length > 0) {
    const winsOf = (id: string) => COMPARED.filter((k) => v[id][k].verdict === 'better').length;
    const all = family.filter((c) => winsOf(c.id) === COMPARED.length);
    const none = family.filter((c) => winsOf(c.id) === 0);
    const some = family.filter((c) => winsOf(c.id) > 0 && winsOf(c.id) < COMPARED.length);
    const names = (cs: typeof family) => cs.map((c) => c.label).join(', ');
    const sentences = [
      all.length === 0
        ? `None of the ${family.length} dropout-style configurations beats the baseline on all ` +
          `${COMPARED.length} compared metrics.`
        : `Of the ${family.length} dropout-style configurations, ${all.length} beat${all.length === 1 ? 's' : ''} ` +
          `the baseline on all ${COMPARED.length} compared metrics (${names(all)}).`,
    ];
    if (some.length > 0) {
      sentences.push(
        `${names(some)} beat${some.length === 1 ? 's' : ''} it on some metrics only: ` +
          some.map((c) => `${c.label} on ${winsOf(c.id)} of ${COMPARED.length}`).join(', ') +
          '.',
      );
    }
    if (none.length > 0) {
      sentences.push(`${names(none)} beat${none.length === 1 ? 's' : ''} it on none.`);
    }
    paragraphs.push(`**Dropout family.** ${sentences.join(' ')}`);
  }

  const pairs = [...new Set(input.agreements.map((a) => `${a.a}|${a.b}`))];
  for (const pair of pairs) {
    const [aId, bId] = pair.split('|');
    const items = input.agreements.filter((a) => a.a === aId && a.b === bId);
    const parts = items.map((a) => {
      const info = metricInfo(a.metric);
      const verdict = a.singleSeed
        ? 'one seed, no spread to judge by'
        : a.agree
          ? `**agree** within the seed-to-seed spread (|Δ| ${fmt(Math.abs(a.delta))} ≤ ${fmt(a.spread)})`
          : `do **not** agree within the seed-to-seed spread (|Δ| ${fmt(Math.abs(a.delta))} > ${fmt(a.spread)})`;
      return `${info.label} ${showPair(stats[aId][a.metric], stats[bId][a.metric])}: ${verdict}`;
    });
    const diffs = items[0].differences.map((d) => fmt(d)).join(', ');
    paragraphs.push(
      `**${labelOf(input, aId)} vs ${labelOf(input, bId)}** (otherwise the same network, rate and ` +
        `seeds): ${parts.join('; ')}. Per-seed differences of ${metricInfo(items[0].metric).label}: ${diffs}.`,
    );
  }

  if (input.mc) {
    const { mc, deterministic, samples, perSeed } = input.mc;
    const separates = mc.meanEntropyWrong > mc.meanEntropyCorrect;
    const mcAuroc = stat(perSeed.map((s) => s.mcAuroc));
    const detAuroc = stat(perSeed.map((s) => s.deterministicAuroc));
    const c = compare(mcAuroc, detAuroc, 'higher');
    const aurocVerdict =
      c.verdict === 'better'
        ? 'better than'
        : c.verdict === 'worse'
          ? 'worse than'
          : c.singleSeed
            ? 'equal to'
            : 'no different (within the seed-to-seed spread) from';
    paragraphs.push(
      `**Monte-Carlo dropout** (${labelOf(input, input.mc.config)} model, ${samples} samples per digit, ` +
        `${perSeed.length} seed(s) pooled): mean predictive entropy ${fmt(mc.meanEntropyWrong)} nats on the ` +
        `${mc.nWrong} wrongly classified held-out digits vs ${fmt(mc.meanEntropyCorrect)} on the ${mc.nCorrect} ` +
        'correct ones' +
        (separates
          ? ` (${fmt(mc.meanEntropyWrong / mc.meanEntropyCorrect)}× higher): the averaged prediction is less sure where it is wrong.`
          : ': the entropy does **not** flag the errors.') +
        ` As a detector of errors, MC entropy has AUROC ${showStat(mcAuroc)} per seed (0.5 is chance), ` +
        `${aurocVerdict} the deterministic prediction's entropy of the same models (${showStat(detAuroc)}). ` +
        `Accuracy of the MC mean ${fmt(mc.accuracy)} vs the deterministic prediction ${fmt(deterministic.accuracy)}.`,
    );
  }
  return paragraphs;
}
