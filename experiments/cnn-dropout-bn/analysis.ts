/**
 * The numbers of the CNN experiment over seeds, and one verdict per claim, written only from
 * them. Pure functions on the runs' JSON (no tfjs), so tests can check the text against numbers.
 */
import { aggregate, ConfigStats, CurvePoint, meanCurve } from '../lib/curves';
import { fmt, pct } from '../lib/report';
import {
  Claim,
  Comparison,
  compare,
  showComparison,
  showPair,
  showStat,
  Stat,
  stat,
} from '../lib/stats';
import { BASELINE, CONFIGS } from './configs';
import type { CnnRun } from './train';

/** The variance ratio of one BN over seeds, before and after recalibration. */
export interface ShiftStat {
  index: number;
  afterDropout: boolean;
  before: Stat;
  after: Stat;
}

/** Everything of one configuration, over seeds. */
export interface ConfigSummary {
  id: string;
  label: string;
  stats: ConfigStats;
  curve: CurvePoint[];
  params: number;
  /** Largest |bias| feeding a BN over seeds (null: none). */
  maxBiasBeforeBn: number | null;
  /** Per BN (input side first); empty without BN. */
  shifts: ShiftStat[];
  /** After `recalibrateBatchNorm` (null without BN). */
  recalibrated: { heldOutAcc: Stat; heldOutLoss: Stat } | null;
}

/** Summaries of every configuration that ran, in {@link CONFIGS} order. */
export function summarize(runs: readonly CnnRun[]): ConfigSummary[] {
  return CONFIGS.filter((c) => runs.some((r) => r.config === c.id)).map((c) => {
    const mine = [...runs.filter((r) => r.config === c.id)].sort((a, b) => a.seed - b.seed);
    const bn = mine.map((r) => r.batchNorm).filter((b): b is NonNullable<typeof b> => b !== null);
    const biases = mine.map((r) => r.maxBiasBeforeBn).filter((b): b is number => b !== null);
    return {
      id: c.id,
      label: c.label,
      stats: aggregate(mine.map((r) => r.metrics)),
      curve: meanCurve(mine.map((r) => r.curve)),
      params: mine[0].params,
      maxBiasBeforeBn: biases.length ? Math.max(...biases) : null,
      shifts:
        bn.length === 0
          ? []
          : bn[0].shift.map((s, i) => ({
              index: s.index,
              afterDropout: s.afterDropout,
              before: stat(bn.map((b) => b.shift[i].ratio)),
              after: stat(bn.map((b) => b.recalibratedShift[i].ratio)),
            })),
      recalibrated:
        bn.length === 0
          ? null
          : {
              heldOutAcc: stat(bn.map((b) => b.recalibrated.heldOutAcc)),
              heldOutLoss: stat(bn.map((b) => b.recalibrated.heldOutLoss)),
            },
    };
  });
}

export type { Claim };

/** Per seed, the mean over the given BNs of |1 − ratio|: how far the BNs are from no shift. */
function shiftDistance(s: ConfigSummary, which: 'before' | 'after', only?: Set<number>): Stat {
  const picked = s.shifts.filter((x) => !only || only.has(x.index));
  const seeds = picked[0]?.[which].values.length ?? 0;
  return stat(
    Array.from(
      { length: seeds },
      (_, k) =>
        picked.reduce((sum, x) => sum + Math.abs(1 - x[which].values[k]), 0) / picked.length,
    ),
  );
}

function ratios(s: ConfigSummary, which: 'before' | 'after', only?: Set<number>): string {
  return s.shifts
    .filter((x) => !only || only.has(x.index))
    .map((x) => `BN ${x.index + 1}: ${showStat(x[which])}`)
    .join(', ');
}

function spreadNote(c: Comparison): string {
  return showComparison(c);
}

/** The claims the experiment tests, each with a verdict from the numbers. */
export function claims(summaries: readonly ConfigSummary[]): Claim[] {
  const get = (id: string) => summaries.find((s) => s.id === id);
  const out: Claim[] = [];
  const missing = (claim: string, ids: string[]) =>
    out.push({ claim, verdict: 'not measured', evidence: `needs ${ids.join(', ')}` });
  const need = (claim: string, ids: string[]) => {
    const found = ids.map(get);
    if (found.some((s) => !s)) {
      missing(claim, ids);
      return null;
    }
    return found as ConfigSummary[];
  };

  let claim = 'Dropout before a BN shifts the variance the BN sees (Li et al. 2019)';
  const shiftPair = need(claim, ['bn-dropout-before', 'bn-dropout-after']);
  if (shiftPair) {
    const [before, after] = shiftPair;
    const noisy = new Set(before.shifts.filter((x) => x.afterDropout).map((x) => x.index));
    const c = compare(
      shiftDistance(before, 'before', noisy),
      shiftDistance(after, 'before', noisy),
      'higher',
    );
    out.push({
      claim,
      verdict: c.verdict === 'better' ? 'holds' : 'does not hold',
      evidence:
        `held-out variance / moving variance at the BNs behind a dropout: ${ratios(before, 'before', noisy)} ` +
        `with dropout before them vs ${ratios(after, 'before', noisy)} with dropout after the last BN; ` +
        `mean |1 − ratio| ${showPair(shiftDistance(before, 'before', noisy), shiftDistance(after, 'before', noisy))}` +
        spreadNote(c),
    });
  }

  claim = '`recalibrateBatchNorm` (dropout off) removes the shift and recovers held-out accuracy';
  const recal = need(claim, ['bn-dropout-before']);
  if (recal) {
    const [s] = recal;
    const after = shiftDistance(s, 'after');
    const r = s.recalibrated!;
    const c = compare(r.heldOutAcc, s.stats.finalHeldOutAcc, 'higher');
    const removed = after.mean < 0.05;
    out.push({
      claim,
      verdict: removed && c.verdict !== 'worse' ? 'holds' : 'does not hold',
      evidence:
        `after recalibration ${ratios(s, 'after')} (mean |1 − ratio| ${showStat(after)}, ` +
        `${removed ? 'below' : 'not below'} 0.05); held-out accuracy ${showPair(s.stats.finalHeldOutAcc, r.heldOutAcc)} ` +
        `before vs after: ${c.verdict === 'better' ? 'higher' : c.verdict === 'worse' ? 'lower' : 'not separated'}${spreadNote(c)}`,
    });
  }

  claim = 'Dropout placed after the last BN hurts held-out accuracy less than dropout before BNs';
  if (shiftPair) {
    const [before, after] = shiftPair;
    const c = compare(after.stats.finalHeldOutAcc, before.stats.finalHeldOutAcc, 'higher');
    out.push({
      claim,
      verdict: c.verdict === 'better' ? 'holds' : 'does not hold',
      evidence:
        `held-out accuracy ${showPair(after.stats.finalHeldOutAcc, before.stats.finalHeldOutAcc)} (after vs before)` +
        spreadNote(c),
    });
  }

  claim =
    'BN with dropout before it is less accurate than the same two dropouts without BN (like with ' +
    'like: the variance shift, not the heavier dropout)';
  const control = need(claim, ['bn-dropout-before', 'no-bn-dropout-before']);
  if (control) {
    const [withBn, noBn] = control;
    const c = compare(withBn.stats.finalHeldOutAcc, noBn.stats.finalHeldOutAcc, 'higher');
    const r = withBn.recalibrated!;
    const cr = compare(r.heldOutAcc, noBn.stats.finalHeldOutAcc, 'higher');
    out.push({
      claim,
      verdict: c.verdict === 'worse' ? 'holds' : 'does not hold',
      evidence:
        `held-out accuracy ${showPair(withBn.stats.finalHeldOutAcc, noBn.stats.finalHeldOutAcc)} ` +
        `(BN vs no BN, both with the two dropouts)${spreadNote(c)}; after recalibration ` +
        `${showPair(r.heldOutAcc, noBn.stats.finalHeldOutAcc)}${spreadNote(cr)}`,
    });
  }

  for (const [id, name] of [
    ['bn-uout-before', 'Uout'],
    ['bn-gaussian-before', 'Gaussian dropout'],
  ] as const) {
    claim = `${name} before BN shifts the variance less than dropout before BN (Li et al. 2019)`;
    const pair = need(claim, [id, 'bn-dropout-before']);
    if (!pair) continue;
    const [remedy, drop] = pair;
    const noisy = new Set(drop.shifts.filter((x) => x.afterDropout).map((x) => x.index));
    const dr = shiftDistance(remedy, 'before', noisy);
    const dd = shiftDistance(drop, 'before', noisy);
    const c = compare(dr, dd, 'lower');
    const acc = compare(remedy.stats.finalHeldOutAcc, drop.stats.finalHeldOutAcc, 'higher');
    out.push({
      claim,
      verdict: c.verdict === 'better' ? 'holds' : 'does not hold',
      evidence:
        `variance ratio at the BNs behind the noise ${ratios(remedy, 'before', noisy)} vs ` +
        `${ratios(drop, 'before', noisy)}; mean |1 − ratio| ${showPair(dr, dd)}${spreadNote(c)}; ` +
        `held-out accuracy ${showPair(remedy.stats.finalHeldOutAcc, drop.stats.finalHeldOutAcc)}` +
        spreadNote(acc),
    });
  }

  claim = 'A bias before BN is redundant: same accuracy, fewer parameters';
  const bias = need(claim, ['bn', 'bn-bias']);
  if (bias) {
    const [without, withBias] = bias;
    const c = compare(without.stats.finalHeldOutAcc, withBias.stats.finalHeldOutAcc, 'higher');
    const same = c.singleSeed ? Math.abs(c.delta) <= 0.005 : c.verdict === 'not separated';
    out.push({
      claim,
      verdict: same && without.params < withBias.params ? 'holds' : 'does not hold',
      evidence:
        `held-out accuracy ${showPair(without.stats.finalHeldOutAcc, withBias.stats.finalHeldOutAcc)} ` +
        `(no bias vs bias)${spreadNote(c)}; ${withBias.params - without.params} parameters fewer ` +
        `(${without.params} vs ${withBias.params}). BN subtracts every per-channel constant, so the ` +
        'biases get a zero gradient up to float rounding and only drift: largest |bias| after training ' +
        fmt(withBias.maxBiasBeforeBn),
    });
  }

  claim =
    'BN after the convolution, before the activation, trains better than BN after the activation';
  const place = need(claim, ['bn', 'bn-after-relu']);
  if (place) {
    const [beforeRelu, afterRelu] = place;
    const c = compare(beforeRelu.stats.finalHeldOutAcc, afterRelu.stats.finalHeldOutAcc, 'higher');
    out.push({
      claim,
      verdict: c.verdict === 'better' ? 'holds' : 'does not hold',
      evidence:
        `held-out accuracy ${showPair(beforeRelu.stats.finalHeldOutAcc, afterRelu.stats.finalHeldOutAcc)} ` +
        `(before vs after the ReLU): ${c.verdict === 'better' ? 'higher' : c.verdict === 'worse' ? 'lower' : 'not separated'}` +
        spreadNote(c),
    });
  }

  const base = get(BASELINE);
  for (const id of ['dropout', 'spatial-dropout', 'dropblock', 'bn']) {
    const s = get(id);
    claim = `${s?.label ?? id} narrows the train–held-out loss gap of the plain CNN`;
    if (!s || !base) {
      missing(claim, [id, BASELINE]);
      continue;
    }
    const c = compare(s.stats.lossGap, base.stats.lossGap, 'lower');
    const acc = compare(s.stats.finalHeldOutAcc, base.stats.finalHeldOutAcc, 'higher');
    out.push({
      claim,
      verdict: c.verdict === 'better' ? 'holds' : 'does not hold',
      evidence:
        `loss gap ${showPair(s.stats.lossGap, base.stats.lossGap)}${spreadNote(c)}; held-out accuracy ` +
        `${pct(s.stats.finalHeldOutAcc.mean)} vs ${pct(base.stats.finalHeldOutAcc.mean)} ` +
        `(${acc.verdict === 'better' ? 'higher' : acc.verdict === 'worse' ? 'lower' : 'not separated'})`,
    });
  }
  return out;
}
