/**
 * The numbers of the small-batch experiment over seeds, and one verdict per claim, written only
 * from them. Pure functions on the runs' JSON (no tfjs), so tests can check the text against the
 * numbers.
 */
import { fmt, pct } from '../lib/report';
import { Claim, Comparison, compare, showComparison, showPair, Stat, stat } from '../lib/stats';
import { CONFIGS, RECALIBRATED_LABEL, Setting } from './configs';
import type { SmallBatchRun } from './train';

/** The id of the recalibrated evaluation of the 'bn' net, next to the trained configurations. */
export const RECALIBRATED = 'bn-recalibrated';

/** A BN measure over seeds. */
export interface BnStat {
  index: number;
  varianceRatio: Stat;
  gap: Stat;
}

/** One configuration in one setting, over seeds. */
export interface Summary {
  setting: string;
  settingLabel: string;
  batchSize: number;
  stream: Setting['stream'];
  config: string;
  label: string;
  heldOutAcc: Stat;
  heldOutLoss: Stat;
  /** Null for the recalibrated evaluation (no training of its own). */
  finalTrainLoss: Stat | null;
  bn: BnStat[];
}

function bnStats(per: { index: number; varianceRatio: number; gap: number }[][]): BnStat[] {
  if (per.length === 0) return [];
  return per[0].map((m, i) => ({
    index: m.index,
    varianceRatio: stat(per.map((p) => p[i].varianceRatio)),
    gap: stat(per.map((p) => p[i].gap)),
  }));
}

/** Summaries of every (setting, configuration) that ran, settings in order, configs in report order. */
export function summarize(runs: readonly SmallBatchRun[], settings: readonly Setting[]): Summary[] {
  const out: Summary[] = [];
  for (const s of settings) {
    const base = {
      setting: s.id,
      settingLabel: s.label,
      batchSize: s.batchSize,
      stream: s.stream,
    };
    for (const c of CONFIGS) {
      const mine = runs
        .filter((r) => r.setting === s.id && r.config === c.id)
        .sort((a, b) => a.seed - b.seed);
      if (mine.length === 0) continue;
      out.push({
        ...base,
        config: c.id,
        label: c.label,
        heldOutAcc: stat(mine.map((r) => r.heldOutAcc)),
        heldOutLoss: stat(mine.map((r) => r.heldOutLoss)),
        finalTrainLoss: stat(mine.map((r) => r.finalTrainLoss)),
        bn: bnStats(mine.map((r) => r.bn)),
      });
      const recal = mine.map((r) => r.recalibrated).filter((r) => r !== null);
      if (c.id === 'bn' && recal.length === mine.length) {
        out.push({
          ...base,
          config: RECALIBRATED,
          label: RECALIBRATED_LABEL,
          heldOutAcc: stat(recal.map((r) => r.heldOutAcc)),
          heldOutLoss: stat(recal.map((r) => r.heldOutLoss)),
          finalTrainLoss: null,
          bn: bnStats(recal.map((r) => r.bn)),
        });
      }
    }
  }
  return out;
}

/** Per seed, the mean over the BNs of a measure (for one number per configuration). */
export function meanOverBns(s: Summary, key: 'varianceRatio' | 'gap'): Stat {
  const seeds = s.bn[0]?.[key].values.length ?? 0;
  return stat(
    Array.from(
      { length: seeds },
      (_, k) => s.bn.reduce((sum, b) => sum + b[key].values[k], 0) / s.bn.length,
    ),
  );
}

export type { Claim };

function spreadNote(c: Comparison): string {
  return showComparison(c);
}

const direction = (c: Comparison) =>
  c.verdict === 'better' ? 'higher' : c.verdict === 'worse' ? 'lower' : 'not separated';

/** The claims the experiment tests, each with a verdict from the numbers. */
export function claims(summaries: readonly Summary[]): Claim[] {
  const get = (setting: string, config: string) =>
    summaries.find((s) => s.setting === setting && s.config === config);
  const iid = [...new Set(summaries.filter((s) => s.stream === 'iid').map((s) => s.batchSize))];
  const smallest = Math.min(...iid);
  const largest = Math.max(...iid);
  const out: Claim[] = [];
  const need = (claim: string, pairs: [string, string][]): Summary[] | null => {
    const found = pairs.map(([s, c]) => get(s, c));
    if (found.some((f) => !f)) {
      out.push({
        claim,
        verdict: 'not measured',
        evidence: `needs ${pairs.map(([s, c]) => `${c} at ${s}`).join(', ')}`,
      });
      return null;
    }
    return found as Summary[];
  };
  const accClaim = (claim: string, a: Summary, b: Summary, extra = '') => {
    const c = compare(a.heldOutAcc, b.heldOutAcc, 'higher');
    out.push({
      claim,
      verdict: c.verdict === 'better' ? 'holds' : 'does not hold',
      evidence:
        `held-out accuracy ${showPair(a.heldOutAcc, b.heldOutAcc)} (${a.label} vs ${b.label}): ` +
        `${direction(c)}${spreadNote(c)}${extra}`,
    });
  };
  const last = (s: Summary) => s.bn[s.bn.length - 1];

  const small = `b${smallest}`;
  let claim =
    `At batch ${smallest} the built-in's running variance at the dense BN (m = ${smallest} values per channel) ` +
    "is below the population variance, and the pack's 'unbiased' one is closer to it";
  let found = need(claim, [
    [small, 'builtin'],
    [small, 'bn'],
  ]);
  if (found) {
    const [builtin, bn] = found;
    const b = last(builtin).varianceRatio;
    const u = last(bn).varianceRatio;
    const dist = (st: Stat) => stat(st.values.map((v) => Math.abs(1 - v)));
    const c = compare(dist(u), dist(b), 'lower');
    out.push({
      claim,
      verdict: b.mean < 1 && c.verdict === 'better' ? 'holds' : 'does not hold',
      evidence:
        `running / population variance at the dense BN: built-in ${fmt(b.mean)} ± ${fmt(b.std)}, ` +
        `pack ${fmt(u.mean)} ± ${fmt(u.std)}; |1 − ratio| ${showPair(dist(u), dist(b))}${spreadNote(c)}. ` +
        'At the conv BNs m is batch × height × width, so the Bessel factor is close to 1 there: ' +
        summaries
          .filter((s) => s.setting === small && (s.config === 'builtin' || s.config === 'bn'))
          .map(
            (s) =>
              `${s.label} ${s.bn
                .slice(0, -1)
                .map((x) => fmt(x.varianceRatio.mean))
                .join(', ')}`,
          )
          .join('; '),
    });
  }

  claim =
    '`recalibrateBatchNorm` brings the running / population variance ratio of every BN to 1 ± 0.1 in every setting';
  const recals = summaries.filter((s) => s.config === RECALIBRATED);
  if (recals.length === 0) {
    out.push({ claim, verdict: 'not measured', evidence: `needs ${RECALIBRATED}` });
  } else {
    const worst = Math.max(
      ...recals.flatMap((s) => s.bn.map((b) => Math.abs(1 - b.varianceRatio.mean))),
    );
    out.push({
      claim,
      verdict: worst <= 0.1 ? 'holds' : 'does not hold',
      evidence:
        `largest |1 − ratio| after recalibration ${fmt(worst)} (recalibrated on the training digits, ` +
        `measured on held-out ones); before: ${recals
          .map((s) => {
            const bn = get(s.setting, 'bn')!;
            return `${s.settingLabel} ${bn.bn.map((b) => fmt(b.varianceRatio.mean)).join('/')}`;
          })
          .join(', ')}`,
    });
  }

  for (const b of iid.filter((x) => x <= 4)) {
    claim = `At batch ${b}, Batch Renorm reaches a higher held-out accuracy than the pack's BN (Ioffe 2017 reports this for small minibatches)`;
    found = need(claim, [
      [`b${b}`, 'renorm'],
      [`b${b}`, 'bn'],
    ]);
    if (found) {
      const [renorm, bn] = found;
      const gap = compare(meanOverBns(renorm, 'gap'), meanOverBns(bn, 'gap'), 'lower');
      accClaim(
        claim,
        renorm,
        bn,
        `; train/inference output gap (mean over BNs) ${showPair(meanOverBns(renorm, 'gap'), meanOverBns(bn, 'gap'))}: ` +
          `${gap.verdict === 'better' ? 'smaller' : gap.verdict === 'worse' ? 'larger' : 'not separated'}`,
      );
    }
  }

  claim = "At batch 2–4, Batch Renorm's train/inference output gap is smaller than the pack's BN's";
  const pairs = iid
    .filter((x) => x <= 4)
    .map((b) => [get(`b${b}`, 'renorm'), get(`b${b}`, 'bn')] as const);
  if (pairs.length === 0 || pairs.some(([a, b]) => !a || !b)) {
    out.push({ claim, verdict: 'not measured', evidence: 'needs renorm and bn at batch 2 or 4' });
  } else {
    const comps = pairs.map(([a, b]) =>
      compare(meanOverBns(a!, 'gap'), meanOverBns(b!, 'gap'), 'lower'),
    );
    out.push({
      claim,
      verdict: comps.every((c) => c.verdict === 'better') ? 'holds' : 'does not hold',
      evidence: pairs
        .map(
          ([a, b], i) =>
            `${a!.settingLabel}: ${showPair(meanOverBns(a!, 'gap'), meanOverBns(b!, 'gap'))} (renorm vs BN, ` +
            `${comps[i].verdict === 'better' ? 'smaller' : comps[i].verdict === 'worse' ? 'larger' : 'not separated'})`,
        )
        .join('; '),
    });
  }

  const nonIid = summaries.find((s) => s.stream === 'two-class');
  if (nonIid) {
    const id = nonIid.setting;
    claim =
      "On the two-class stream, Batch Renorm reaches a higher held-out accuracy than the pack's BN (Ioffe 2017 reports this for non-i.i.d. minibatches)";
    found = need(claim, [
      [id, 'renorm'],
      [id, 'bn'],
    ]);
    if (found) accClaim(claim, found[0], found[1]);
    claim =
      "On the two-class stream, `recalibrateBatchNorm` raises the held-out accuracy of the pack's BN";
    found = need(claim, [
      [id, RECALIBRATED],
      [id, 'bn'],
    ]);
    if (found) accClaim(claim, found[0], found[1]);
  }

  claim = `At batch ${largest}, Ghost BN (virtual batches) reaches a higher held-out accuracy than BN over the whole batch (Hoffer et al. 2017)`;
  found = need(claim, [
    [`b${largest}`, 'ghost'],
    [`b${largest}`, 'bn'],
  ]);
  if (found) accClaim(claim, found[0], found[1]);

  claim = `At batch ${largest}, Batch Renorm and the pack's BN reach the same held-out accuracy (renorm costs nothing when batches are fine)`;
  found = need(claim, [
    [`b${largest}`, 'renorm'],
    [`b${largest}`, 'bn'],
  ]);
  if (found) {
    const [renorm, bn] = found;
    const c = compare(renorm.heldOutAcc, bn.heldOutAcc, 'higher');
    const same = c.singleSeed ? Math.abs(c.delta) <= 0.005 : c.verdict === 'not separated';
    out.push({
      claim,
      verdict: same ? 'holds' : 'does not hold',
      evidence: `held-out accuracy ${showPair(renorm.heldOutAcc, bn.heldOutAcc)} (renorm vs BN)${spreadNote(c)}`,
    });
  }

  claim = `At batch ${smallest}, BN after the convs only (m = batch × height × width values per channel) beats no normalization`;
  found = need(claim, [
    [small, 'conv-bn'],
    [small, 'none'],
  ]);
  if (found) accClaim(claim, found[0], found[1]);
  claim = `At batch ${smallest}, BN after the convs only beats BN after every layer (the dense BN over m = ${smallest} values is what fails)`;
  found = need(claim, [
    [small, 'conv-bn'],
    [small, 'bn'],
  ]);
  if (found) accClaim(claim, found[0], found[1]);
  claim = `At batch ${largest}, Ghost BN with renorm beats Ghost BN without it (virtual batches of 4: renorm where the paper uses it)`;
  found = need(claim, [
    [`b${largest}`, 'ghost-renorm'],
    [`b${largest}`, 'ghost'],
  ]);
  if (found) accClaim(claim, found[0], found[1]);

  for (const [id, name] of [
    ['groupnorm', 'GroupNorm'],
    ['layernorm', 'LayerNorm'],
  ] as const) {
    claim = `At batch ${smallest}, ${name} beats the pack's BN (Wu & He 2018)`;
    found = need(claim, [
      [small, id],
      [small, 'bn'],
    ]);
    if (found) accClaim(claim, found[0], found[1]);
  }
  claim = `GroupNorm loses less held-out accuracy than the pack's BN from batch ${largest} to batch ${smallest} (Wu & He 2018: GN is flat in the batch size)`;
  found = need(claim, [
    [small, 'groupnorm'],
    [`b${largest}`, 'groupnorm'],
    [small, 'bn'],
    [`b${largest}`, 'bn'],
  ]);
  if (found) {
    const [gnS, gnL, bnS, bnL] = found;
    const dG = stat(gnL.heldOutAcc.values.map((v, i) => v - gnS.heldOutAcc.values[i]));
    const dB = stat(bnL.heldOutAcc.values.map((v, i) => v - bnS.heldOutAcc.values[i]));
    const c = compare(dG, dB, 'lower');
    const flat = compare(gnS.heldOutAcc, gnL.heldOutAcc, 'higher');
    out.push({
      claim,
      verdict: c.verdict === 'better' ? 'holds' : 'does not hold',
      evidence:
        `loss of held-out accuracy from batch ${largest} to ${smallest}: GroupNorm ${pct(dG.mean)}, BN ` +
        `${pct(dB.mean)}${spreadNote(c)}. GroupNorm itself at batch ${smallest} vs ${largest}: ` +
        `${showPair(gnS.heldOutAcc, gnL.heldOutAcc)}${spreadNote(flat)}; with a fixed number of steps ` +
        `batch ${smallest} sees ${largest / smallest}× fewer samples, so "flat" is not expected here`,
    });
  }
  const two = summaries.find((s) => s.stream === 'two-class')?.setting;
  if (two) {
    claim =
      "On the two-class stream, GroupNorm beats the pack's BN (its statistics are per sample)";
    found = need(claim, [
      [two, 'groupnorm'],
      [two, 'bn'],
    ]);
    if (found) accClaim(claim, found[0], found[1]);
  }

  claim = `At batch ${smallest}, the pack's BN loses more held-out accuracy against no normalization than at batch ${largest}`;
  found = need(claim, [
    [small, 'bn'],
    [small, 'none'],
    [`b${largest}`, 'bn'],
    [`b${largest}`, 'none'],
  ]);
  if (found) {
    const [bnS, noneS, bnL, noneL] = found;
    const dS = stat(bnS.heldOutAcc.values.map((v, i) => v - noneS.heldOutAcc.values[i]));
    const dL = stat(bnL.heldOutAcc.values.map((v, i) => v - noneL.heldOutAcc.values[i]));
    const c = compare(dS, dL, 'lower');
    out.push({
      claim,
      verdict: c.verdict === 'better' ? 'holds' : 'does not hold',
      evidence:
        `BN − no normalization, held-out accuracy: ${pct(dS.mean)} at batch ${smallest} vs ${pct(dL.mean)} ` +
        `at batch ${largest}${spreadNote(c)}`,
    });
  }
  return out;
}
