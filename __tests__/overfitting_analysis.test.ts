// The overfitting report's statistics and interpretation, on hand-made numbers: the text must
// follow the numbers, in particular say where dropout does not beat the baseline.
import { auroc, compare, histogramCounts, showPair, stat } from '../experiments/lib/stats';
import {
  aggregate,
  ConfigStats,
  CurvePoint,
  runMetrics,
  RunMetrics,
} from '../experiments/lib/curves';
import { entropySummary } from '../experiments/overfitting/analysis';
import { interpret, InterpretationInput } from '../experiments/overfitting/interpret';

function point(trainLoss: number, heldOutLoss: number, trainAcc = 1, heldOutAcc = 0.9): CurvePoint {
  return { trainLoss, trainAcc, heldOutLoss, heldOutAcc };
}

describe('runMetrics', () => {
  it('takes final values, the best held-out accuracy and the epoch of the minimum held-out loss', () => {
    const m = runMetrics([
      point(1, 1.2, 0.6, 0.55),
      point(0.3, 0.5, 0.9, 0.86),
      point(0.01, 0.7, 1, 0.85),
    ]);
    expect(m.finalHeldOutAcc).toBe(0.85);
    expect(m.bestHeldOutAcc).toBe(0.86);
    expect(m.minHeldOutLoss).toBe(0.5);
    expect(m.bestLossEpoch).toBe(2);
    expect(m.lossGap).toBeCloseTo(0.69, 12);
    expect(m.accGap).toBeCloseTo(0.15, 12);
    expect(m.overfitRatio).toBeCloseTo(1.4, 12);
  });
});

describe('compare', () => {
  it('pairs seeds: better or worse when the 95% paired t interval excludes 0', () => {
    const base = stat([0.5, 0.52, 0.48]);
    const clearlyLower = stat([0.4, 0.42, 0.38]);
    const slightlyLower = stat([0.49, 0.53, 0.46]); // differences −0.01, +0.01, −0.02
    expect(compare(clearlyLower, base, 'lower').verdict).toBe('better');
    expect(compare(clearlyLower, base, 'higher').verdict).toBe('worse');
    const c = compare(slightlyLower, base, 'lower');
    expect(c.verdict).toBe('not separated');
    expect(c.differences.map((d) => Number(d.toFixed(12)))).toEqual([-0.01, 0.01, -0.02]);
    // d̄ = −0.00667, s_d = 0.01528, t(0.975, 2) = 4.302653: half-width 4.302653·s_d/√3 = 0.03795.
    expect(c.ci![0]).toBeCloseTo(-0.00667 - 0.03795, 4);
    expect(c.ci![1]).toBeCloseTo(-0.00667 + 0.03795, 4);
  });

  it('sees a consistent gain that the spread between seeds would hide', () => {
    // The seeds differ a lot (different splits), the configuration wins on every one of them.
    const base = stat([0.5, 0.6, 0.4]);
    const a = stat([0.45, 0.55, 0.36]);
    expect(Math.abs(a.mean - base.mean)).toBeLessThan(Math.sqrt(a.std ** 2 + base.std ** 2));
    expect(compare(a, base, 'lower').verdict).toBe('better');
  });

  it('with one seed there is no interval and nothing separates', () => {
    const c = compare(stat([0.49]), stat([0.5]), 'lower');
    expect(c).toMatchObject({ verdict: 'not separated', singleSeed: true, spread: 0 });
  });

  it('two implementations: not separated when the paired t interval of the differences contains 0', () => {
    const a = compare(stat([0.9, 0.91, 0.89]), stat([0.905, 0.9, 0.895]), 'higher');
    expect(a.verdict).toBe('not separated');
    expect(a.ci![0]).toBeLessThan(0);
    expect(a.ci![1]).toBeGreaterThan(0);
    const b = compare(stat([0.9, 0.91, 0.89]), stat([0.93, 0.94, 0.92]), 'higher');
    expect(b.verdict).toBe('worse');
    expect(b.ci![0]).toBeCloseTo(-0.03, 9);
    expect(b.ci![1]).toBeCloseTo(-0.03, 9);
  });
});

describe('showPair', () => {
  it('prints both means with the decimals that show which is larger', () => {
    expect(showPair(stat([0.904]), stat([0.8996]))).toBe('0.904 vs 0.9');
    expect(showPair(stat([0.9005]), stat([0.9003]))).toBe('0.9005 vs 0.9003');
    expect(showPair(stat([0.9005]), stat([0.90049996]))).toBe('0.9005 vs 0.9005');
    expect(showPair(stat([0.35, 0.37]), stat([0.45, 0.47]))).toBe('0.36 ± 0.0141 vs 0.46 ± 0.0141');
  });
});

describe('auroc and histograms', () => {
  it('auroc is 1 for a perfect score, 0.5 for a constant one, ties counting ½', () => {
    expect(auroc([0.1, 0.2, 0.9, 0.8], [false, false, true, true])).toBe(1);
    expect(auroc([1, 1, 1, 1], [false, true, false, true])).toBe(0.5);
    expect(auroc([0.1, 0.5, 0.5, 0.9], [false, true, false, true])).toBe(0.875);
    expect(auroc([0.1, 0.2], [false, false])).toBeNaN();
  });

  it('histogram counts every finite value once, the top edge in the last bin', () => {
    const h = histogramCounts([0, 0.5, 0.99, 1, 2, NaN], 2, 0, 1);
    expect(h.edges).toEqual([0, 0.5, 1]);
    expect(h.counts).toEqual([1, 4]);
  });

  it('entropySummary splits correct and wrong digits', () => {
    const s = entropySummary([0.1, 0.2, 1.5, 2], [true, true, false, false], 4);
    expect(s).toMatchObject({ nCorrect: 2, nWrong: 2, accuracy: 0.5, errorAuroc: 1 });
    expect(s.meanEntropyCorrect).toBeCloseTo(0.15, 12);
    expect(s.meanEntropyWrong).toBeCloseTo(1.75, 12);
  });
});

function metrics(m: Partial<RunMetrics> = {}): RunMetrics {
  return {
    finalHeldOutAcc: 0.9,
    bestHeldOutAcc: 0.91,
    finalTrainAcc: 1,
    finalTrainLoss: 0.01,
    finalHeldOutLoss: 0.5,
    minHeldOutLoss: 0.4,
    bestLossEpoch: 8,
    lossGap: 0.49,
    accGap: 0.1,
    overfitRatio: 1.25,
    ...m,
  };
}

/**
 * Stats of a configuration over three seeds: `m` plus `jitter` × pattern[s] on every metric of
 * seed s. Configurations with different patterns differ from seed to seed by a noise of mean 0.
 */
function configStats(m: Partial<RunMetrics>, pattern = [-1, 0, 1], jitter = 0.01): ConfigStats {
  const base = metrics(m);
  return aggregate(
    pattern.map((p) => {
      const r = { ...base };
      for (const k of Object.keys(r) as (keyof RunMetrics)[]) r[k] = base[k] + p * jitter;
      return r;
    }),
  );
}

const OTHER_NOISE = [1, 0, -1];

function input(stats: Record<string, ConfigStats>): InterpretationInput {
  return {
    configs: [
      { id: 'none', label: 'No regularization', dropoutFamily: false },
      { id: 'tfjs-dropout', label: 'Built-in dropout', dropoutFamily: true },
      { id: 'dropout', label: 'Pack Dropout (inverted)', dropoutFamily: true },
    ],
    baseline: 'none',
    stats,
    seeds: 3,
    epochs: 25,
    agreements: [
      {
        a: 'dropout',
        b: 'tfjs-dropout',
        metric: 'finalHeldOutAcc',
        ...compare(stats.dropout.finalHeldOutAcc, stats['tfjs-dropout'].finalHeldOutAcc, 'higher'),
      },
    ],
    overfit: { trainAcc: 0.98, lossRatio: 1.1 },
  };
}

describe('interpret', () => {
  it('says where dropout does not beat the baseline, and where it does', () => {
    const stats = {
      none: configStats({}),
      // Lower held-out losses and loss gap; accuracies and accuracy gap equal up to seed noise.
      dropout: configStats(
        { finalHeldOutLoss: 0.35, minHeldOutLoss: 0.33, lossGap: 0.3 },
        OTHER_NOISE,
      ),
      'tfjs-dropout': configStats({ finalHeldOutLoss: 0.35, minHeldOutLoss: 0.33, lossGap: 0.3 }),
    };
    const text = interpret(input(stats)).join('\n');
    const line = text.split('\n').find((l) => l.startsWith('- **Pack Dropout (inverted)**')) ?? '';
    expect(line).toMatch(
      /beats the baseline on final held-out loss.*held-out loss at the selected epoch.*loss gap/,
    );
    expect(line).toMatch(
      /does \*\*not\*\* beat it on final held-out accuracy.*held-out accuracy at the selected epoch.*not separated by a 95% paired t interval/,
    );
    expect(text).toContain('**not separated** (Δ');
    expect(text).toContain('It overfits');
  });

  it('says so when a dropout configuration is worse on every metric, and when implementations disagree', () => {
    const stats = {
      none: configStats({}),
      dropout: configStats({
        finalHeldOutAcc: 0.8,
        bestHeldOutAcc: 0.81,
        finalHeldOutLoss: 0.9,
        minHeldOutLoss: 0.8,
        lossGap: 0.8,
        accGap: 0.2,
      }),
      'tfjs-dropout': configStats({}),
    };
    const text = interpret(input(stats)).join('\n');
    const line = text.split('\n').find((l) => l.startsWith('- **Pack Dropout (inverted)**')) ?? '';
    expect(line).toContain('beats the baseline on **no** compared metric');
    expect(line).toMatch(/is \*\*worse\*\* than the baseline on final held-out accuracy/);
    expect(text).toMatch(/Pack Dropout \(inverted\) beats? it on none/);
    expect(text).toContain('**separated** (Δ');
  });

  it('does not claim overfitting when the baseline held-out loss never rises', () => {
    const stats = {
      none: configStats({ finalHeldOutLoss: 0.4, minHeldOutLoss: 0.4, overfitRatio: 1 }),
      dropout: configStats({}),
      'tfjs-dropout': configStats({}),
    };
    expect(interpret(input(stats)).join('\n')).toContain('it does **not** clearly overfit');
  });
});

describe('runMetrics with validation digits', () => {
  it('selects the epoch on the validation loss and reads the held-out numbers there', () => {
    const p = (heldOutLoss: number, heldOutAcc: number, valLoss: number) => ({
      trainLoss: 0.1,
      trainAcc: 1,
      heldOutLoss,
      heldOutAcc,
      valLoss,
      valAcc: 0.9,
    });
    // The held-out (test) loss is lowest at epoch 1, the validation loss at epoch 2.
    const m = runMetrics([p(0.3, 0.95, 0.5), p(0.4, 0.9, 0.35), p(0.5, 0.85, 0.45)]);
    expect(m.bestLossEpoch).toBe(2);
    expect(m.minHeldOutLoss).toBe(0.4);
    expect(m.bestHeldOutAcc).toBe(0.9);
    expect(m.overfitRatio).toBeCloseTo(0.5 / 0.4, 12);
  });
});
