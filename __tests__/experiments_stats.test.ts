// The experiments' statistics glue against published numbers: a paired t interval from Student's
// sleep data and a percentile bootstrap interval on a fixed sample with a fixed seed.
import { bootstrapInterval, compare, pairedT, stat } from '../experiments/lib/stats';

// Cushny & Peebles' sleep data as Student (1908) analysed it, R's `datasets::sleep`: extra hours of
// sleep under two drugs, the same 10 patients. R's `?t.test` example,
// `t.test(extra ~ group, data = sleep, paired = TRUE)` (R ≥ 4.0: `with(sleep, t.test(extra[group
// == 2], extra[group == 1], paired = TRUE))`), prints t = 4.0621, df = 9, p-value = 0.002833,
// 95 percent confidence interval 0.7001142 2.4598858, mean difference 1.58.
const DRUG1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0];
const DRUG2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4];

describe('paired t interval (textbook)', () => {
  it("reproduces R's paired t.test on Student's sleep data", () => {
    const r = pairedT(DRUG2, DRUG1);
    expect(r.mean).toBeCloseTo(1.58, 12);
    expect(r.ci[0]).toBeCloseTo(0.7001142, 6);
    expect(r.ci[1]).toBeCloseTo(2.4598858, 6);
    expect(r.pValue).toBeCloseTo(0.002833, 5);
    const c = compare(stat(DRUG2), stat(DRUG1), 'higher');
    expect(c.verdict).toBe('better');
    expect(compare(stat(DRUG2), stat(DRUG1), 'lower').verdict).toBe('worse');
  });

  it('equal differences give a degenerate interval; one pair gives none', () => {
    expect(pairedT([2, 3, 4], [1, 2, 3]).ci).toEqual([1, 1]);
    expect(pairedT([1, 2], [1, 2]).ci).toEqual([0, 0]);
    expect(pairedT([1], [0]).ci.every(Number.isNaN)).toBe(true);
  });
});

describe('percentile bootstrap interval', () => {
  const d = DRUG2.map((v, i) => v - DRUG1[i]);

  it('is reproducible with a seed and changes with another', () => {
    const a = bootstrapInterval(d, { seed: 1234, resamples: 4000 });
    expect(bootstrapInterval(d, { seed: 1234, resamples: 4000 })).toEqual(a);
    expect(bootstrapInterval(d, { seed: 99, resamples: 4000 })).not.toEqual(a);
  });

  it('agrees with the large-sample interval of the mean of the sleep differences', () => {
    // The bootstrap distribution of the mean has sd σ̂/√n with the plug-in σ̂ (divisor n):
    // s_d = 1.229995, σ̂/√n = s_d·√((n−1)/n)/√n = 0.36900; normal 95% interval 1.58 ± 0.72323 =
    // [0.857, 2.303]. The sample is right-skewed (one 4.6), so the percentile interval sits a
    // little to the right; Monte-Carlo error with 4000 resamples is ≈ 0.02.
    const [lo, hi] = bootstrapInterval(d, { seed: 1234, resamples: 4000 });
    expect(lo).toBeGreaterThan(0.857 - 0.08);
    expect(lo).toBeLessThan(0.857 + 0.15);
    expect(hi).toBeGreaterThan(2.303 - 0.08);
    expect(hi).toBeLessThan(2.303 + 0.15);
    expect(hi - lo).toBeCloseTo(2 * 0.72323, 0);
  });

  it('of a constant sample is that constant; a single value has no interval', () => {
    expect(bootstrapInterval([3, 3, 3, 3], { seed: 1 })).toEqual([3, 3]);
    expect(bootstrapInterval([3], { seed: 1 }).every(Number.isNaN)).toBe(true);
  });
});
