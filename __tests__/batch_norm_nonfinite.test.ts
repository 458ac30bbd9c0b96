/**
 * Issue 11, item 2: non-finite batch statistics never reach the running statistics.
 */
import * as tf from '@tensorflow/tfjs';
import { clipOptimizer, layers, ops } from 'tfjs-dropnorm';
import { built, randomizeWeights, snapshot, unchanged, weightValues } from './batch_norm_helpers';
import { leakedTensors, maxAbsDiff } from './helpers';

const N = 6;
const C = 4;
const VALUES: Array<[string, number]> = [
  ['NaN', NaN],
  ['+Infinity', Infinity],
  ['-Infinity', -Infinity],
];

/** A clean [N, C] batch with `value` written at the given (sample, channel) cells. */
function poisoned(value: number, cells: Array<[number, number]>, seed: number): tf.Tensor {
  const x = tf.randomNormal([N, C], 1, 2, 'float32', seed).dataSync().slice();
  for (const [n, c] of cells) x[n * C + c] = value;
  return tf.tensor2d(x, [N, C]);
}

const PLACEMENTS: Array<[string, Array<[number, number]>, number[]]> = [
  ['one sample, one channel', [[2, 1]], [1]],
  [
    'one sample, every channel',
    [...Array(C).keys()].map((c) => [2, c] as [number, number]),
    [0, 1, 2, 3],
  ],
  [
    'every sample, every channel',
    [...Array(N * C).keys()].map((i) => [Math.floor(i / C), i % C] as [number, number]),
    [0, 1, 2, 3],
  ],
];

const cases = VALUES.flatMap(([name, value]) =>
  PLACEMENTS.map(([where, cells, bad]) => [name, where, value, cells, bad] as const),
);

describe('BatchNorm: a non-finite batch statistic leaves that channel alone', () => {
  test.each(cases)(
    '%s in %s: poisoned channels keep their statistics bit for bit; the others update',
    (_, __, value, cells, bad) => {
      for (const varianceCorrection of ['unbiased', 'biased'] as const) {
        const momentum = 0.9;
        const layer = built(layers.batchNorm({ momentum, varianceCorrection }), [N, C]);
        randomizeWeights(layer, 3);
        const [, , mean0, var0] = snapshot(layer).map((t) => Array.from(t.dataSync()));
        const x = poisoned(value, cells, 4);
        layer.apply(x, { training: true });
        const mean = weightValues(layer, 'moving_mean');
        const variance = weightValues(layer, 'moving_variance');
        const xs = x.dataSync();
        for (let c = 0; c < C; c++) {
          if (bad.includes(c)) {
            expect(mean[c]).toBe(mean0[c]);
            expect(variance[c]).toBe(var0[c]);
            continue;
          }
          // Clean channel: the closed form.
          let mu = 0;
          for (let n = 0; n < N; n++) mu += xs[n * C + c] / N;
          let s2 = 0;
          for (let n = 0; n < N; n++) s2 += (xs[n * C + c] - mu) ** 2 / N;
          const fed = varianceCorrection === 'unbiased' ? (s2 * N) / (N - 1) : s2;
          expect(mean[c]).toBeCloseTo(momentum * mean0[c] + (1 - momentum) * mu, 5);
          expect(variance[c]).toBeCloseTo(momentum * var0[c] + (1 - momentum) * fed, 5);
        }
      }
    },
  );

  test('channels-first rank 4: the guard selects along axis 1', () => {
    const layer = built(layers.batchNorm({ axis: 1, momentum: 0 }), [2, 3, 2, 2]);
    const x = tf.randomNormal([2, 3, 2, 2], 0, 1, 'float32', 5).dataSync().slice();
    x[1 * 12 + 2 * 4 + 3] = NaN; // sample 1, channel 2
    layer.apply(tf.tensor4d(x, [2, 3, 2, 2]), { training: true });
    const mean = weightValues(layer, 'moving_mean');
    expect(mean[2]).toBe(0);
    expect(mean.slice(0, 2).every((v) => Number.isFinite(v) && v !== 0)).toBe(true);
  });

  test('cumulative mode: a batch counts when any channel updated; a fully poisoned batch does not', () => {
    const layer = built(layers.batchNorm({ momentum: null }), [N, C]);
    const clean = tf.randomNormal([N, C], 0, 1, 'float32', 6);
    layer.apply(clean, { training: true });
    const after1 = weightValues(layer, 'moving_mean');
    layer.apply(poisoned(NaN, PLACEMENTS[2][1], 7), { training: true });
    expect(weightValues(layer, 'num_batches_tracked')).toEqual([1]);
    expect(weightValues(layer, 'moving_mean')).toEqual(after1);
    layer.apply(poisoned(Infinity, [[0, 1]], 8), { training: true });
    expect(weightValues(layer, 'num_batches_tracked')).toEqual([2]);
    // The skipped channel keeps its value: n = 2 now counts that value as its second batch.
    expect(weightValues(layer, 'moving_mean')[1]).toBe(after1[1]);
  });

  test('the training step reads nothing back from the backend (no GPU→CPU sync), masked or not', () => {
    const backend = tf.backend();
    const readSync = jest.spyOn(backend, 'readSync');
    const read = jest.spyOn(backend, 'read');
    try {
      const layer = built(layers.batchNorm({ momentum: null }), [N, 3, C]);
      const x = tf.tensor3d(
        Array.from({ length: N * 3 * C }, (_, i) => (i === 5 ? NaN : Math.sin(i))),
        [N, 3, C],
      );
      const mask = tf.tensor2d(
        Array.from({ length: N * 3 }, (_, i) => i % 3 !== 2),
        [N, 3],
        'bool',
      );
      // Every variant of the training step and its backward (issue 21's well-conditioned one):
      // renorm with a ramp, Ghost BN with a remainder, channels-first.
      const variants = [
        built(
          layers.batchNorm({
            renorm: true,
            renormClipping: { rmax: 3, dmax: 5 },
            renormRamp: { rmaxEnd: 4 },
            virtualBatchSize: 4,
          }),
          [N, 3, C],
        ),
        built(layers.batchNorm({ axis: 1 }), [N, 3, C]),
      ];
      tf.tidy(() => {
        layer.apply(x, { training: true });
        layer.apply(x, { training: true, mask });
        tf.grad((xx: tf.Tensor) => tf.sum(layer.apply(xx, { training: true, mask }) as tf.Tensor))(
          x,
        );
        const [ghost, channelsFirst] = variants;
        tf.grad((xx: tf.Tensor) => tf.sum(ghost.apply(xx, { training: true, mask }) as tf.Tensor))(
          x,
        );
        tf.grad((xx: tf.Tensor) =>
          tf.sum(channelsFirst.apply(xx, { training: true }) as tf.Tensor),
        )(x);
      });
      expect(readSync).not.toHaveBeenCalled();
      expect(read).not.toHaveBeenCalled();
    } finally {
      readSync.mockRestore();
      read.mockRestore();
    }
    // Not vacuous: reading a value does go through the spied method.
    const spy = jest.spyOn(backend, 'readSync');
    tf.scalar(1).dataSync();
    expect(spy).toHaveBeenCalled();
    spy.mockRestore();
  });

  test('the built-in: its statistics become NaN after one NaN sample (recorded)', () => {
    const builtin = built(tf.layers.batchNormalization({ momentum: 0.9 }), [N, C]);
    builtin.apply(poisoned(NaN, [[2, 1]], 9), { training: true });
    const mean = Array.from(builtin.getWeights()[2].dataSync());
    const variance = Array.from(builtin.getWeights()[3].dataSync());
    expect(Number.isNaN(mean[1]) && Number.isNaN(variance[1])).toBe(true);
    // ...and stay NaN through clean batches: the exponential average never forgets a NaN.
    builtin.apply(tf.ones([N, C]), { training: true });
    expect(Number.isNaN(builtin.getWeights()[2].dataSync()[1])).toBe(true);
  });

  test('the pure guard: guardedMovingAverage selects, usableChannels checks finiteness and count', () => {
    const old = tf.tensor1d([1, 2, 3]);
    const value = tf.tensor1d([NaN, 4, Infinity]);
    const usable = ops.usableChannels(value, tf.tensor1d([1, 1, 1]), 5, 2);
    expect(Array.from(usable.dataSync())).toEqual([0, 1, 0]);
    const next = ops.guardedMovingAverage(old, value, 0.5, usable);
    expect(Array.from(next.dataSync())).toEqual([1, 3, 3]);
    const fewer = ops.usableChannels(tf.zeros([3]), tf.zeros([3]), tf.tensor1d([1]), 2);
    expect(Array.from(fewer.dataSync())).toEqual([0, 0, 0]);
  });
});

describe("with clipOptimizer(…, {nonFinite: 'skip'}), a NaN sample cannot poison the model", () => {
  function model(bn: tf.layers.Layer, optimizer: tf.Optimizer): tf.Sequential {
    const m = tf.sequential({
      layers: [
        tf.layers.dense({
          units: C,
          inputShape: [5],
          kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
        }),
        bn,
        tf.layers.activation({ activation: 'relu' }),
        tf.layers.dense({
          units: 1,
          kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
        }),
      ],
    });
    m.compile({ optimizer, loss: 'meanSquaredError' });
    return m;
  }
  const x = tf.randomNormal([16, 5], 1, 2, 'float32', 10);
  const y = tf.sum(x, 1, true);
  const clean = tf.randomNormal([8, 5], 1, 2, 'float32', 11);
  function poisonedX(value: number): tf.Tensor {
    const v = x.dataSync().slice();
    v[3 * 5 + 2] = value; // one sample, one input feature: every BN channel sees it
    return tf.tensor2d(v, x.shape as [number, number]);
  }

  test.each(VALUES)(
    '%s: fit skips the step, and predictions on clean inputs equal those before it',
    async (_, value) => {
      const optimizer = clipOptimizer(tf.train.sgd(0.05), { nonFinite: 'skip' });
      const m = model(layers.batchNorm({ momentum: 0.9 }), optimizer);
      await m.fit(x, y, { epochs: 1, batchSize: 16, verbose: 0 });
      const before = m.predict(clean) as tf.Tensor;
      const weights = snapshot(m.layers[1]);
      await m.fit(poisonedX(value), y, { epochs: 1, batchSize: 16, verbose: 0 });
      expect(optimizer.skippedSteps).toBe(1);
      expect(unchanged(m.layers[1], weights)).toBe(true);
      const after = m.predict(clean) as tf.Tensor;
      expect(tf.all(tf.isFinite(after)).dataSync()[0]).toBe(1);
      expect(maxAbsDiff(after, before)).toBe(0);
    },
  );

  test('the built-in under the same guard: the step is skipped, yet every prediction is NaN (recorded)', async () => {
    const optimizer = clipOptimizer(tf.train.sgd(0.05), { nonFinite: 'skip' });
    const m = model(tf.layers.batchNormalization({ momentum: 0.9 }), optimizer);
    await m.fit(x, y, { epochs: 1, batchSize: 16, verbose: 0 });
    await m.fit(poisonedX(NaN), y, { epochs: 1, batchSize: 16, verbose: 0 });
    expect(optimizer.skippedSteps).toBe(1);
    const after = (m.predict(clean) as tf.Tensor).dataSync();
    expect(Array.from(after).every(Number.isNaN)).toBe(true);
  });

  test('no tensor leaks over fits with poisoned batches', async () => {
    const optimizer = clipOptimizer(tf.train.sgd(0.05), { nonFinite: 'skip' });
    const m = model(layers.batchNorm({ momentum: null }), optimizer);
    const bad = poisonedX(NaN);
    await m.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0 });
    const leak = await leakedTensors(() =>
      m.fit(bad, y, { epochs: 3, batchSize: 8, verbose: 0, shuffle: false }),
    );
    expect(leak).toBe(0);
    // Per epoch, the first batch (with the NaN sample) is skipped and the second counts.
    expect(weightValues(m.layers[1], 'num_batches_tracked')).toEqual([5]);
  });
});
