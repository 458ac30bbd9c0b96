// The small-batch experiment's measurements and verdicts, in-process on tiny inputs: the variance
// ratio against its closed form, the train/inference gap at its two ends, and verdicts that follow
// hand-made numbers.
import * as tf from '@tensorflow/tfjs';
import { layers as dn } from 'tfjs-dropnorm';
import type { SeedData } from '../experiments/lib/training';
import { claims, summarize } from '../experiments/small-batch/analysis';
import { settings } from '../experiments/small-batch/configs';
import { BnMeasure, measureBatchNorms, SmallBatchRun } from '../experiments/small-batch/train';

describe('measureBatchNorms', () => {
  const x = tf.tensor2d([
    [1, 0],
    [3, 4],
    [5, 8],
    [7, 12],
    [2, 2],
    [6, 6],
  ]);
  const data = { xHeldOut: x } as unknown as SeedData;
  const labels = Int32Array.from([0, 1, 0, 1, 0, 1]);
  const setting = { id: 'b2', label: 'batch 2', batchSize: 2, stream: 'iid' as const };

  function model(bn: tf.layers.Layer): tf.Sequential {
    return tf.sequential({
      layers: [
        tf.layers.dense({
          inputShape: [2],
          units: 2,
          useBias: false,
          kernelInitializer: 'identity',
        }),
        bn,
      ],
    });
  }

  it('the variance ratio is moving / population variance, mean over channels; the model is unchanged', () => {
    const bn = dn.batchNorm();
    const m = model(bn);
    const [gamma, beta, mean] = bn.getWeights();
    bn.setWeights([gamma, beta, mean, tf.tensor1d([2, 40])]);
    const before = bn.getWeights().map((w) => Array.from(w.dataSync()));
    const tensors = tf.memory().numTensors;
    const [measure] = measureBatchNorms(m, data, labels, setting, 3, 1);
    expect(tf.memory().numTensors).toBe(tensors);
    // Population variances (÷ n) of the columns: 35/6 + … computed here.
    const pop = [0, 1].map((c) => {
      const col = (x.arraySync() as number[][]).map((r) => r[c]);
      const mu = col.reduce((s, v) => s + v, 0) / col.length;
      return col.reduce((s, v) => s + (v - mu) ** 2, 0) / col.length;
    });
    expect(measure.varianceRatio).toBeCloseTo((2 / pop[0] + 40 / pop[1]) / 2, 4);
    expect(measure.gap).toBeGreaterThan(0.1);
    expect(bn.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(before);
  });

  it('the gap of an unclipped renorm BN (r and d against the moving statistics) is 0', () => {
    const bn = dn.batchNorm({ renorm: true });
    const m = model(bn);
    bn.setWeights([tf.ones([2]), tf.zeros([2]), tf.tensor1d([3, 5]), tf.tensor1d([4, 16])]);
    const [measure]: BnMeasure[] = measureBatchNorms(m, data, labels, setting, 3, 1);
    expect(measure.gap).toBeLessThan(1e-6);
  });
});

/** Runs of one setting with the given held-out accuracies per configuration (one per seed). */
function runs(setting: string, acc: Record<string, number[]>): SmallBatchRun[] {
  return Object.entries(acc).flatMap(([config, values]) =>
    values.map((heldOutAcc, i) => ({
      setting,
      config: config as SmallBatchRun['config'],
      seed: i + 1,
      heldOutAcc,
      heldOutLoss: 1,
      finalTrainLoss: 1,
      bn:
        config === 'none'
          ? []
          : [0, 1, 2].map((index) => ({
              index,
              varianceRatio: config === 'builtin' && index === 2 ? 0.5 : 1,
              gap: config === 'renorm' ? 0.01 : 0.5,
            })),
      recalibrated: null,
      seconds: 0,
      leaked: 0,
    })),
  );
}

describe('small-batch verdicts follow the numbers', () => {
  const all = settings([2, 32], 32);
  const verdict = (rs: SmallBatchRun[], start: string) =>
    claims(summarize(rs, all)).find((c) => c.claim.startsWith(start))?.verdict;

  it('renorm better than BN at batch 2 holds, and flips with the numbers', () => {
    const start = 'At batch 2, Batch Renorm reaches a higher';
    expect(verdict(runs('b2', { renorm: [0.8, 0.82, 0.81], bn: [0.7, 0.71, 0.69] }), start)).toBe(
      'holds',
    );
    expect(verdict(runs('b2', { renorm: [0.7, 0.71, 0.69], bn: [0.8, 0.82, 0.81] }), start)).toBe(
      'does not hold',
    );
    // Differences that change sign from seed to seed are within the spread.
    expect(verdict(runs('b2', { renorm: [0.8, 0.7, 0.75], bn: [0.7, 0.8, 0.74] }), start)).toBe(
      'does not hold',
    );
  });

  it("the built-in's running variance claim needs both, and follows the ratios", () => {
    const start = "At batch 2 the built-in's running variance";
    expect(verdict(runs('b2', { bn: [0.5, 0.5] }), start)).toBe('not measured');
    expect(verdict(runs('b2', { builtin: [0.5, 0.5], bn: [0.5, 0.5] }), start)).toBe('holds');
  });
});
