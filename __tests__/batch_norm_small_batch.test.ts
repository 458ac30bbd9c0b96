/**
 * Issue 11, item 1: a training batch with m = 1 element per channel (the last batch of
 * `model.fit` when samples % batchSize == 1).
 */
import * as tf from '@tensorflow/tfjs';
import { BatchNorm, layers } from 'tfjs-dropnorm';
import { built, randomizeWeights, snapshot, unchanged, weightValues } from './batch_norm_helpers';
import { leakedTensors, maxAbsDiff } from './helpers';

const C = 3;

/** [1, C, 1, …] (channels-first) or [1, …, 1, C] (channels-last) of the given rank: m = 1. */
function singleShape(rank: number, channelsFirst: boolean): number[] {
  const shape = new Array<number>(rank).fill(1);
  shape[channelsFirst ? 1 : rank - 1] = C;
  return shape;
}

/** β broadcast along the channel axis of `shape`. */
function betaAlong(beta: tf.Tensor, shape: number[], axis: number): tf.Tensor {
  return tf.broadcastTo(
    tf.reshape(
      beta,
      shape.map((d, i) => (i === axis ? d : 1)),
    ),
    shape,
  );
}

let warn: jest.SpyInstance;
beforeEach(() => {
  warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
});
afterEach(() => warn.mockRestore());

const cases: Array<[number, boolean]> = [];
for (const rank of [2, 3, 4, 5]) for (const first of [false, true]) cases.push([rank, first]);

describe('BatchNorm with one element per channel (m = 1) in training', () => {
  test.each(cases)(
    "rank %i, channels-first %s: the output is β and 'unbiased' leaves the statistics unchanged",
    (rank, channelsFirst) => {
      const shape = singleShape(rank, channelsFirst);
      const axis = channelsFirst ? 1 : -1;
      const layer = built(layers.batchNorm({ axis }), shape);
      randomizeWeights(layer, 3 + rank);
      const before = snapshot(layer);
      const x = tf.randomNormal(shape, 5, 3, 'float32', rank);
      const y = layer.apply(x, { training: true }) as tf.Tensor;
      expect(maxAbsDiff(y, betaAlong(before[1], shape, channelsFirst ? 1 : rank - 1))).toBe(0);
      expect(unchanged(layer, before)).toBe(true);
    },
  );

  test.each(cases)(
    "rank %i, channels-first %s: 'biased' updates with μ_B = x and σ²_B = 0, as the built-in",
    (rank, channelsFirst) => {
      const shape = singleShape(rank, channelsFirst);
      const momentum = 0.9;
      const layer = built(
        layers.batchNorm({ axis: channelsFirst ? 1 : -1, momentum, varianceCorrection: 'biased' }),
        shape,
      );
      randomizeWeights(layer, 20 + rank);
      const [, , mean0, var0] = snapshot(layer).map((t) => Array.from(t.dataSync()));
      const x = tf.randomNormal(shape, 5, 3, 'float32', 30 + rank);
      layer.apply(x, { training: true });
      const xs = Array.from(x.dataSync());
      const mean = weightValues(layer, 'moving_mean');
      const variance = weightValues(layer, 'moving_variance');
      for (let c = 0; c < C; c++) {
        expect(mean[c]).toBeCloseTo(momentum * mean0[c] + (1 - momentum) * xs[c], 5);
        expect(variance[c]).toBeCloseTo(momentum * var0[c], 6);
      }
      expect(warn).not.toHaveBeenCalled();
    },
  );

  test.each([2, 3, 4])(
    'rank %i channels-last: output and gradients equal the built-in within 1e-6',
    (rank) => {
      const shape = singleShape(rank, false);
      const builtin = built(tf.layers.batchNormalization(), shape);
      const biased = built(layers.batchNorm({ varianceCorrection: 'biased' }), shape);
      const unbiased = built(layers.batchNorm(), shape);
      randomizeWeights(builtin, 40 + rank);
      biased.setWeights(builtin.getWeights());
      unbiased.setWeights(builtin.getWeights());
      const x = tf.randomNormal(shape, 2, 4, 'float32', 50 + rank);
      const dy = tf.randomNormal(shape, 0, 1, 'float32', 60 + rank);
      const run = (layer: tf.layers.Layer) => {
        const f = (xx: tf.Tensor) =>
          tf.sum(tf.mul(layer.apply(xx, { training: true }) as tf.Tensor, dy)) as tf.Scalar;
        const { grads: g } = tf.variableGrads(() => f(x));
        const [dGamma, dBeta] = layer.trainableWeights.map((w) => g[w.name]);
        const y = layer.apply(x, { training: true }) as tf.Tensor;
        return { y, dx: tf.grad(f)(x), dGamma, dBeta };
      };
      const b = run(builtin);
      for (const ours of [biased, unbiased]) {
        const o = run(ours);
        expect(maxAbsDiff(o.y, b.y)).toBeLessThan(1e-6);
        expect(maxAbsDiff(o.dx, b.dx)).toBeLessThan(1e-6);
        expect(maxAbsDiff(o.dGamma, b.dGamma)).toBeLessThan(1e-6);
        expect(maxAbsDiff(o.dBeta, b.dBeta)).toBeLessThan(1e-6);
      }
      // Not vacuous: dβ = Σ dy is non-zero. Each layer ran the same three training calls, and
      // 'biased' moved its statistics exactly as the built-in did.
      expect(tf.max(tf.abs(b.dBeta)).dataSync()[0]).toBeGreaterThan(1e-3);
      builtin
        .getWeights()
        .forEach((w, i) => expect(maxAbsDiff(biased.getWeights()[i], w)).toBeLessThan(1e-6));
    },
  );

  test('rank 5: the built-in cannot train at all (recorded); the pack does', () => {
    const shape = singleShape(5, false);
    const x = tf.ones(shape);
    expect(() => tf.layers.batchNormalization().apply(x, { training: true })).toThrow(
      /not implemented for array of rank 5/,
    );
    expect((layers.batchNorm().apply(x, { training: true }) as tf.Tensor).shape).toEqual(shape);
  });
});

describe('the one-time warning', () => {
  test('says once per layer that the statistics are left unchanged, and why', () => {
    const a = layers.batchNorm({ name: 'bn_once' });
    const b = layers.batchNorm({ name: 'bn_other' });
    const x1 = tf.ones([1, C]);
    for (let i = 0; i < 3; i++) a.apply(x1, { training: true });
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toMatch(
      /BatchNorm 'bn_once': a training batch has m = 1 element\(s\) per channel \(input shape \[1,3\]\); under varianceCorrection 'unbiased' .*m\/\(m−1\) is undefined .* left unchanged .*once per layer/,
    );
    b.apply(x1, { training: true });
    expect(warn).toHaveBeenCalledTimes(2);
    expect(warn.mock.calls[1][0]).toMatch(/^BatchNorm 'bn_other'/);
  });

  test('is not shown for m ≥ 2, for inference, or under biased', () => {
    const layer = layers.batchNorm();
    layer.apply(tf.ones([2, C]), { training: true });
    layer.apply(tf.ones([1, C]));
    layers.batchNorm({ varianceCorrection: 'biased' }).apply(tf.ones([1, C]), { training: true });
    expect(warn).not.toHaveBeenCalled();
  });
});

describe('cumulative mode (momentum null) does not count a skipped batch', () => {
  test('batches of 4, 1, 4: num_batches_tracked = 2 and the statistics average the two real batches', () => {
    const layer = built(layers.batchNorm({ momentum: null }), [4, C]);
    const a = tf.randomNormal([4, C], 1, 2, 'float32', 70);
    const b = tf.randomNormal([4, C], -3, 1, 'float32', 71);
    layer.apply(a, { training: true });
    layer.apply(tf.randomNormal([1, C], 9, 9, 'float32', 72), { training: true });
    layer.apply(b, { training: true });
    expect(weightValues(layer, 'num_batches_tracked')).toEqual([2]);
    const mean = tf.div(tf.add(tf.moments(a, 0).mean, tf.moments(b, 0).mean), 2);
    const unbiased = (t: tf.Tensor) => tf.mul(tf.moments(t, 0).variance, 4 / 3);
    const variance = tf.div(tf.add(unbiased(a), unbiased(b)), 2);
    expect(maxAbsDiff(tf.tensor1d(weightValues(layer, 'moving_mean')), mean)).toBeLessThan(1e-5);
    expect(maxAbsDiff(tf.tensor1d(weightValues(layer, 'moving_variance')), variance)).toBeLessThan(
      1e-5,
    );
  });

  test("under 'biased' the batch of one counts, with σ²_B = 0", () => {
    const layer = built(layers.batchNorm({ momentum: null, varianceCorrection: 'biased' }), [1, C]);
    layer.apply(tf.tensor2d([[1, 2, 3]]), { training: true });
    layer.apply(tf.tensor2d([[3, 4, 5]]), { training: true });
    expect(weightValues(layer, 'num_batches_tracked')).toEqual([2]);
    expect(weightValues(layer, 'moving_mean')).toEqual([2, 3, 4]);
    expect(weightValues(layer, 'moving_variance')).toEqual([0, 0, 0]);
  });
});

describe('model.fit with a last batch of one sample', () => {
  function model(bn: tf.layers.Layer): tf.Sequential {
    const m = tf.sequential({
      layers: [
        tf.layers.dense({
          units: 4,
          inputShape: [5],
          kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
        }),
        bn,
        tf.layers.dense({
          units: 1,
          kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
        }),
      ],
    });
    m.compile({ optimizer: tf.train.sgd(0.05), loss: 'meanSquaredError' });
    return m;
  }
  const x = tf.randomNormal([33, 5], 1, 2, 'float32', 80);
  const y = tf.sum(x, 1, true);
  const fit = async (bn: tf.layers.Layer, n: number) => {
    const m = model(bn);
    await m.fit(x.slice(0, n), y.slice(0, n), {
      epochs: 1,
      batchSize: 32,
      shuffle: false,
      verbose: 0,
    });
    return m.layers[1];
  };

  test.each([[0.9], [null]])(
    'momentum %s: 33 samples with batchSize 32 completes; the statistics equal a fit on the first 32',
    async (momentum) => {
      const full = await fit(layers.batchNorm({ momentum }), 33);
      const first = await fit(layers.batchNorm({ momentum }), 32);
      for (const name of ['moving_mean', 'moving_variance']) {
        expect(weightValues(full, name)).toEqual(weightValues(first, name));
      }
      if (momentum === null) expect(weightValues(full, 'num_batches_tracked')).toEqual([1]);
      // Not vacuous: the first batch moved the statistics away from their initial values.
      expect(Math.max(...weightValues(full, 'moving_mean').map(Math.abs))).toBeGreaterThan(1e-3);
      expect(warn).toHaveBeenCalledTimes(1);
    },
  );

  test('the built-in trains through it too, updating its statistics with σ²_B = 0 (recorded)', async () => {
    const full = await fit(tf.layers.batchNormalization({ momentum: 0.9 }), 33);
    const first = await fit(tf.layers.batchNormalization({ momentum: 0.9 }), 32);
    const moved = weightValues(full, 'moving_variance').map(
      (v, i) => v - weightValues(first, 'moving_variance')[i],
    );
    expect(Math.max(...moved.map(Math.abs))).toBeGreaterThan(1e-3);
    expect(full).not.toBeInstanceOf(BatchNorm);
  });

  test('no tensor leaks over fits with a batch of one', async () => {
    const m = model(layers.batchNorm({ momentum: null }));
    await m.fit(x, y, { epochs: 1, batchSize: 32, verbose: 0 });
    const leak = await leakedTensors(() => m.fit(x, y, { epochs: 5, batchSize: 32, verbose: 0 }));
    expect(leak).toBe(0);
    const one = tf.ones([1, 4]);
    const single = await leakedTensors(() =>
      tf.dispose(m.layers[1].apply(one, { training: true }) as tf.Tensor),
    );
    expect(single).toBe(0);
  });
});
