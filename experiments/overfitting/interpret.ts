/**
 * The overfitting report's interpretation: markdown paragraphs written only from the numbers
 * passed in; nothing is assumed about which configuration wins.
 */
import { fmt } from '../lib/report';
import { Comparison, compare, showInterval, showPair, showStat, stat } from '../lib/stats';
import { metricInfo, MetricKey } from '../lib/curves';
import { COMPARED, EntropySummary, RunSummary, UncertaintySplit, verdicts } from './analysis';

/** Monte-Carlo summaries: pooled over seeds, and per seed for the seed-to-seed spread. */
export interface McInput {
  config: string;
  samples: number;
  mc: EntropySummary;
  deterministic: EntropySummary;
  /** The MC predictive entropy's two parts: expected entropy (aleatoric), mutual information (epistemic). */
  expectedEntropy: UncertaintySplit;
  mutualInformation: UncertaintySplit;
  /**
   * Per seed, the error AUROC of the MC entropy, of the deterministic entropy and of the mutual
   * information (same seeds, same order).
   */
  perSeed: { seed: number; mcAuroc: number; deterministicAuroc: number; miAuroc: number }[];
}

/** {@link compare} of configuration `a` with `b` (the reference) on `metric` (results.json `agreements`). */
export type PairComparison = Comparison & { a: string; b: string; metric: MetricKey };

/** What the interpretation needs to know about the run. */
export interface InterpretationInput extends RunSummary {
  /** Seeds per configuration. */
  seeds: number;
  epochs: number;
  /** Pairs of configurations whose held-out accuracies should agree (pack inverted vs built-in). */
  agreements: readonly PairComparison[];
  mc?: McInput;
  /** When the baseline counts as overfitting: train acc ≥ this and final/min held-out loss > that. */
  overfit: { trainAcc: number; lossRatio: number };
}

function labelOf(input: InterpretationInput, id: string): string {
  return input.configs.find((c) => c.id === id)?.label ?? id;
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
      ? 'With a single seed there is no interval: every comparison below is "not separated". Run ' +
          'with `--seeds 5` for verdicts that account for noise.'
      : `**How to read the verdicts.** Within a seed every configuration shares the split, the initial ` +
          `weights and the data order, so a configuration is compared with the baseline seed by seed: it ` +
          `"beats" the baseline on a metric when the mean of its ${input.seeds} per-seed differences is ` +
          'better with its 95% paired t interval excluding 0; otherwise the two are "not separated", ' +
          'which is not a win. Two implementations are "not separated" when the 95% paired t interval ' +
          'of their per-seed differences contains 0.',
  );

  const ratio = base.finalHeldOutLoss.mean / base.minHeldOutLoss.mean;
  const overfits =
    base.finalTrainAcc.mean >= input.overfit.trainAcc && ratio > input.overfit.lossRatio;
  paragraphs.push(
    `**Baseline.** Without regularization the MLP reaches train accuracy ${showStat(base.finalTrainAcc)} ` +
      `and train loss ${showStat(base.finalTrainLoss)}. Its validation loss is lowest at epoch ` +
      `${showStat(base.bestLossEpoch)}, where the held-out (test) loss is ` +
      `${showStat(base.minHeldOutLoss)}; the held-out loss ends at ` +
      `${showStat(base.finalHeldOutLoss)}, ${fmt(ratio)}× its value at that epoch; the final loss gap is ` +
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
        leader('minHeldOutLoss', 'lower', 'Lowest held-out loss at the selected epoch'),
        leader('finalHeldOutLoss', 'lower', 'lowest final held-out loss'),
        leader('bestHeldOutAcc', 'higher', 'highest held-out accuracy at the selected epoch'),
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
    const ties = COMPARED.filter((k) => v[c.id][k].verdict === 'not separated');
    const losses = COMPARED.filter((k) => v[c.id][k].verdict === 'worse');
    const parts: string[] = [
      wins.length > 0
        ? `beats the baseline on ${wins.map(show).join(', ')}`
        : 'beats the baseline on **no** compared metric',
    ];
    if (ties.length > 0) {
      parts.push(
        `does **not** beat it on ${ties.map(show).join(', ')}: not separated by a 95% paired t interval`,
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
    parts.push(
      `its validation loss bottoms out ${when} (epoch ${showPair(e, base.bestLossEpoch)})`,
    );
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
        ? 'one seed, no interval'
        : a.verdict === 'not separated'
          ? `**not separated** (Δ ${fmt(a.delta)}, 95% paired t CI ${showInterval(a.ci)})`
          : `**separated** (Δ ${fmt(a.delta)}, 95% paired t CI ${showInterval(a.ci)})`;
      return `${info.label} ${showPair(stats[aId][a.metric], stats[bId][a.metric])}: ${verdict}`;
    });
    const diffs = items[0].differences.map((d) => fmt(d)).join(', ');
    paragraphs.push(
      `**${labelOf(input, aId)} vs ${labelOf(input, bId)}** (otherwise the same network, rate and ` +
        `seeds): ${parts.join('; ')}. Per-seed differences of ${metricInfo(items[0].metric).label}: ${diffs}.`,
    );
  }

  if (input.mc) {
    const { mc, deterministic, samples, perSeed, expectedEntropy } = input.mc;
    const mi = input.mc.mutualInformation;
    const miAuroc = stat(perSeed.map((s) => s.miAuroc));
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
            : 'not separated (95% paired t interval) from';
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
        `Of the predictive entropy, the mutual information between prediction and weights (the part ` +
        `where the samples disagree, BALD) is ${fmt(mi.meanWrong)} nats on wrong digits vs ` +
        `${fmt(mi.meanCorrect)} on correct ones, the expected entropy (each sample unsure) ` +
        `${fmt(expectedEntropy.meanWrong)} vs ${fmt(expectedEntropy.meanCorrect)}; the mutual ` +
        `information alone flags errors with AUROC ${showStat(miAuroc)} per seed. ` +
        `Accuracy of the MC mean ${fmt(mc.accuracy)} vs the deterministic prediction ${fmt(deterministic.accuracy)}.`,
    );
  }
  return paragraphs;
}
