// The CNN experiment's measurements and verdicts, in-process on tiny inputs: the variance ratio
// against its closed form, and verdicts that follow hand-made numbers.
import * as tf from '@tensorflow/tfjs';
import { layers as dn } from 'tfjs-dropnorm';
import { claims, ConfigSummary } from '../experiments/cnn-dropout-bn/analysis';
import { varianceShift } from '../experiments/cnn-dropout-bn/variance';
import { aggregate, RunMetrics } from '../experiments/lib/curves';
import { stat } from '../experiments/lib/stats';

describe('varianceShift', () => {
  it('is the mean over channels of the population variance of the BN input / moving variance', () => {
    const model = tf.sequential({
      layers: [
        dn.dropout({ inputShape: [2], rate: 0.5, seed: 1 }),
        tf.layers.dense({ units: 2, useBias: false, kernelInitializer: 'identity' }),
        dn.batchNorm({ name: 'bn' }),
      ],
    });
    const bn = model.getLayer('bn');
    const [gamma, beta, mean] = bn.getWeights();
    bn.setWeights([gamma, beta, mean, tf.tensor1d([2, 0.5])]);
    const x = tf.tensor2d([
      [1, 0],
      [3, 4],
      [5, 8],
      [7, 12],
    ]);
    const before = tf.memory().numTensors;
    const [shift] = varianceShift(model, x);
    expect(tf.memory().numTensors).toBe(before);
    // Column variances (÷ n): 5 and 20; the dropout is off (inference mode).
    expect(shift.ratio).toBeCloseTo((5 / 2 + 20 / 0.5) / 2, 4);
    expect(shift.min).toBeCloseTo(2.5, 4);
    expect(shift.max).toBeCloseTo(40, 4);
    expect(shift.afterDropout).toBe(true);
    model.dispose();
    tf.dispose([x, gamma, beta, mean]);
  });
});

/** A configuration's summary with the given per-seed numbers. */
function summary(
  id: string,
  heldOutAcc: number[],
  options: { ratios?: number[][]; recalibrated?: number[][]; params?: number; gap?: number[] } = {},
): ConfigSummary {
  const metrics = heldOutAcc.map(
    (acc, s) => ({ finalHeldOutAcc: acc, lossGap: options.gap?.[s] ?? 0.2 }) as RunMetrics,
  );
  const ratios = options.ratios ?? [];
  return {
    id,
    label: id,
    stats: aggregate(metrics.map((m) => ({ ...zeroMetrics, ...m }))),
    curve: [],
    params: options.params ?? 1000,
    maxBiasBeforeBn: null,
    shifts: ratios.map((perSeed, index) => ({
      index,
      afterDropout: id === 'bn-dropout-before' && index > 0,
      before: stat(perSeed),
      after: stat(options.recalibrated?.[index] ?? perSeed.map(() => 1)),
    })),
    recalibrated: ratios.length
      ? { heldOutAcc: stat(heldOutAcc.map((a) => a + 0.05)), heldOutLoss: stat([0, 0, 0]) }
      : null,
  };
}

const zeroMetrics: RunMetrics = {
  finalHeldOutAcc: 0,
  bestHeldOutAcc: 0,
  finalTrainAcc: 0,
  finalTrainLoss: 0,
  finalHeldOutLoss: 0,
  minHeldOutLoss: 0,
  bestLossEpoch: 1,
  lossGap: 0,
  accGap: 0,
  overfitRatio: 1,
};

describe('claims', () => {
  const ones = [1, 1.01, 0.99];
  const base = (beforeRatios: number[][], afterRatios: number[][]) => [
    summary('none', [0.9, 0.91, 0.9], { gap: [0.3, 0.3, 0.3] }),
    summary('bn', [0.93, 0.935, 0.93], { ratios: [ones, ones, ones], params: 1000 }),
    summary('bn-bias', [0.93, 0.935, 0.931], { ratios: [ones, ones, ones], params: 1088 }),
    summary('bn-dropout-before', [0.8, 0.82, 0.81], { ratios: beforeRatios }),
    summary('bn-dropout-after', [0.93, 0.92, 0.93], { ratios: afterRatios }),
  ];

  it('the shift claim holds when the BNs behind a dropout are far from 1 and not otherwise', () => {
    const shifted = claims(base([ones, [0.5, 0.55, 0.52], [0.4, 0.42, 0.45]], [ones, ones, ones]));
    expect(shifted[0].claim).toMatch(/^Dropout before a BN shifts the variance/);
    expect(shifted[0].verdict).toBe('holds');
    const same = claims(base([ones, ones, ones], [ones, ones, ones]));
    expect(same[0].verdict).toBe('does not hold');
  });

  it('the bias claim holds for equal accuracy and fewer parameters, fails for a real difference', () => {
    const bias = (list: ReturnType<typeof claims>) =>
      list.find((c) => c.claim.startsWith('A bias before BN'))!;
    expect(bias(claims(base([ones, ones, ones], [ones, ones, ones]))).verdict).toBe('holds');
    const worse = base([ones, ones, ones], [ones, ones, ones]);
    worse[1] = summary('bn', [0.9, 0.9, 0.905], { ratios: [ones, ones, ones], params: 1000 });
    expect(bias(claims(worse)).verdict).toBe('does not hold');
  });

  it('a claim whose configurations did not run is "not measured"', () => {
    const only = claims([summary('none', [0.9, 0.9, 0.9])]);
    expect(only.find((c) => c.claim.startsWith('A bias'))!.verdict).toBe('not measured');
  });
});
