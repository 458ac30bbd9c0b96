/**
 * Issue 15, item 2: Ghost BatchNorm (`virtualBatchSize`, Hoffer et al. 2017): each virtual batch
 * normalized with its own moments equals plain BatchNorm run on it alone (outputs and gradients);
 * the running statistics are updated once per step with the count-weighted mean of the virtual
 * batches' means and fed variances; a remainder is one more virtual batch.
 */
import * as tf from '@tensorflow/tfjs';
import { layers, ops } from 'tfjs-dropnorm';
import { built, moments64, randomizeWeights, snapshot, weightValues } from './batch_norm_helpers';
import { leakedTensors, maxAbsDiff } from './helpers';

/** Output and gradients of Σ y·dy for one training call of `layer`. */
function trainCall(
  layer: tf.layers.Layer,
  x: tf.Tensor,
  dy: tf.Tensor,
  kwargs: Record<string, unknown> = {},
) {
  const xv = tf.variable(x);
  let y!: tf.Tensor;
  const { grads, value } = tf.variableGrads(() => {
    y = tf.keep(layer.apply(xv, { training: true, ...kwargs }) as tf.Tensor);
    return tf.sum(tf.mul(y, dy)) as tf.Scalar;
  });
  const [dGamma, dBeta] = layer.trainableWeights.map((w) => tf.reshape(grads[w.name], [-1]));
  const out = { y, dx: grads[xv.name], dGamma, dBeta };
  value.dispose();
  xv.dispose();
  return out;
}

/** Rows [start, start + size) of `t` along axis 0. */
const rows = (t: tf.Tensor, start: number, size: number) => tf.slice(t, start, size);

/**
 * Plain BatchNorm run on each virtual batch alone (a fresh layer per virtual batch, all with the
 * weights of `like`): outputs and dx concatenated, dγ and dβ summed.
 */
function perVirtualBatch(
  like: tf.layers.Layer,
  args: Parameters<typeof layers.batchNorm>[0],
  x: tf.Tensor,
  dy: tf.Tensor,
  sizes: number[],
  mask?: tf.Tensor,
) {
  let start = 0;
  const parts = sizes.map((size) => {
    const plain = built(layers.batchNorm(args), [size, ...x.shape.slice(1)]);
    plain.setWeights(like.getWeights().slice(0, 4));
    const kwargs = mask ? { mask: rows(mask, start, size) } : {};
    const out = trainCall(plain, rows(x, start, size), rows(dy, start, size), kwargs);
    start += size;
    return { ...out, layer: plain };
  });
  return {
    y: tf.concat(parts.map((p) => p.y)),
    dx: tf.concat(parts.map((p) => p.dx)),
    dGamma: tf.addN(parts.map((p) => p.dGamma)),
    dBeta: tf.addN(parts.map((p) => p.dBeta)),
    layers: parts.map((p) => p.layer),
  };
}

let warn: jest.SpyInstance;
beforeEach(() => {
  warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
});
afterEach(() => warn.mockRestore());

/**
 * The layer runs one pass per virtual batch on cpu and one grouped pass per run of equal virtual
 * batches on other backends (ops.oneBlockPerVirtualBatch): both layouts are checked.
 */
const BACKENDS = ['cpu', 'wasm'];
function onBackend(backend: string) {
  beforeAll(async () => {
    require('@tensorflow/tfjs-backend-wasm');
    await tf.setBackend(backend);
    // IS_TEST's kernel leak check reports false leaks on wasm for a customGrad's saved tensors
    // (see withoutLeakCheck in helpers.ts); tensor leaks are measured with tf.memory() in
    // 'Ghost BatchNorm in a model'.
    tf.env().set('IS_TEST', backend !== 'wasm');
  });
  afterAll(async () => {
    tf.env().set('IS_TEST', true);
    await tf.setBackend('cpu');
  });
}

describe.each(BACKENDS)(
  'Ghost BatchNorm equals plain BatchNorm on each virtual batch (%s)',
  (backend) => {
    onBackend(backend);
    const cases: Array<[string, number[], number, number, number[]]> = [
      ['12 rows, V = 4 (even)', [12, 3], -1, 4, [4, 4, 4]],
      ['10 rows, V = 4 (remainder 2)', [10, 3], -1, 4, [4, 4, 2]],
      ['rank 4 channels-last, 6 images, V = 4', [6, 3, 2, 4], -1, 4, [4, 2]],
      ['rank 4 channels-first, 6 images, V = 2', [6, 4, 3, 2], 1, 2, [2, 2, 2]],
      ['rank 3 channels-first, 7 rows, V = 3', [7, 2, 5], 1, 3, [3, 3, 1]],
      ['3 rows, V = 4 (one virtual batch: plain BN)', [3, 2], -1, 4, [3]],
    ];
    test.each(cases)('%s: outputs and gradients', (_, shape, axis, size, sizes) => {
      const ghost = built(layers.batchNorm({ axis, virtualBatchSize: size }), shape);
      randomizeWeights(ghost, 1);
      const x = tf.randomNormal(shape, 2, 3, 'float32', 2);
      const dy = tf.randomNormal(shape, 0, 1, 'float32', 3);
      const expected = perVirtualBatch(ghost, { axis }, x, dy, sizes);
      const out = trainCall(ghost, x, dy);
      expect(maxAbsDiff(out.y, expected.y)).toBeLessThan(1e-5);
      expect(maxAbsDiff(out.dx, expected.dx)).toBeLessThan(1e-5);
      expect(maxAbsDiff(out.dGamma, expected.dGamma)).toBeLessThan(1e-5);
      expect(maxAbsDiff(out.dBeta, expected.dBeta)).toBeLessThan(1e-5);
      if (sizes.length > 1) {
        // Not vacuous: the whole batch normalized at once gives other outputs.
        const whole = built(layers.batchNorm({ axis }), shape);
        whole.setWeights(ghost.getWeights());
        expect(maxAbsDiff(whole.apply(x, { training: true }) as tf.Tensor, out.y)).toBeGreaterThan(
          1e-3,
        );
      }
    });

    test('with a mask: each virtual batch uses its own unmasked moments', () => {
      const [B, T, C] = [6, 4, 2];
      const lengths = [4, 1, 3, 2, 4, 1];
      const mask = tf.tensor2d(
        lengths.flatMap((n) => Array.from({ length: T }, (_, t) => t < n)),
        [B, T],
        'bool',
      );
      const ghost = built(layers.batchNorm({ virtualBatchSize: 4 }), [B, T, C]);
      randomizeWeights(ghost, 4);
      const x = tf.randomNormal([B, T, C], 1, 2, 'float32', 5);
      const dy = tf.randomNormal([B, T, C], 0, 1, 'float32', 6);
      const expected = perVirtualBatch(ghost, {}, x, dy, [4, 2], mask);
      const out = trainCall(ghost, x, dy, { mask });
      for (const key of ['y', 'dx', 'dGamma', 'dBeta'] as const) {
        expect(maxAbsDiff(out[key], expected[key])).toBeLessThan(1e-5);
      }
    });

    test('with renorm: each virtual batch gets its own r and d against the same renorm statistics', () => {
      const args = { renorm: true, renormClipping: { rmax: 1.5, dmax: 0.4 } };
      const ghost = built(layers.batchNorm({ ...args, virtualBatchSize: 3 }), [9, 2]);
      randomizeWeights(ghost, 7);
      const x = tf.randomNormal([9, 2], 1, 2, 'float32', 8);
      const dy = tf.randomNormal([9, 2], 0, 1, 'float32', 9);
      let start = 0;
      const parts = [3, 3, 3].map((size) => {
        const one = built(layers.batchNorm(args), [size, 2]);
        one.setWeights(ghost.getWeights());
        const o = trainCall(one, rows(x, start, size), rows(dy, start, size));
        start += size;
        return o;
      });
      const out = trainCall(ghost, x, dy);
      expect(maxAbsDiff(out.y, tf.concat(parts.map((p) => p.y)))).toBeLessThan(1e-5);
      expect(maxAbsDiff(out.dx, tf.concat(parts.map((p) => p.dx)))).toBeLessThan(1e-5);
      expect(maxAbsDiff(out.dGamma, tf.addN(parts.map((p) => p.dGamma)))).toBeLessThan(1e-5);
    });
  },
);

describe.each(BACKENDS)(
  'Ghost BatchNorm running statistics: one update per step (%s)',
  (backend) => {
    onBackend(backend);
    test("equal virtual batches: the mean of their means and of their Bessel-corrected variances ('unbiased')", () => {
      const momentum = 0.7;
      const layer = built(layers.batchNorm({ momentum, virtualBatchSize: 3 }), [9, 2]);
      randomizeWeights(layer, 10);
      const [, , mean0, var0] = snapshot(layer).map((w) => Array.from(w.dataSync()));
      const x = tf.randomNormal([9, 2], 3, 2, 'float32', 11);
      layer.apply(x, { training: true });
      const data = x.arraySync() as number[][];
      const groups = [0, 3, 6].map((s) => moments64(data.slice(s, s + 3)));
      const meanOfMeans = [0, 1].map((j) => groups.reduce((s, g) => s + g.mean[j], 0) / 3);
      const meanOfVars = [0, 1].map(
        (j) => groups.reduce((s, g) => s + (g.variance[j] * 3) / 2, 0) / 3,
      );
      weightValues(layer, 'moving_mean').forEach((v, j) =>
        expect(v).toBeCloseTo(momentum * mean0[j] + (1 - momentum) * meanOfMeans[j], 5),
      );
      weightValues(layer, 'moving_variance').forEach((v, j) =>
        expect(v).toBeCloseTo(momentum * var0[j] + (1 - momentum) * meanOfVars[j], 5),
      );
    });

    test("'biased': the mean of the biased variances", () => {
      const layer = built(
        layers.batchNorm({ momentum: 0, virtualBatchSize: 2, varianceCorrection: 'biased' }),
        [4, 1],
      );
      layer.apply(tf.tensor2d([[1], [3], [10], [14]]), { training: true });
      expect(weightValues(layer, 'moving_mean')).toEqual([7]); // (2 + 12)/2
      expect(weightValues(layer, 'moving_variance')).toEqual([2.5]); // (1 + 4)/2
    });

    test('a remainder weighs by its element count', () => {
      // [1, 3 | 10, 14 | 0, 6, 9]... with V = 2 and 5 rows: [1, 3], [10, 14], [6] is a remainder of
      // one. With 7 rows and V = 3: [1, 3, 5], [10, 14, 18], [0, 6]: means 3, 14, 3 (m = 3, 3, 2).
      const layer = built(layers.batchNorm({ momentum: 0, virtualBatchSize: 3 }), [8, 1]);
      layer.apply(tf.tensor2d([[1], [3], [5], [10], [14], [18], [0], [6]]), { training: true });
      // Means (3·3 + 3·14 + 2·3)/8; unbiased variances 4, 16, 18 weighted 3, 3, 2.
      expect(weightValues(layer, 'moving_mean')[0]).toBeCloseTo((9 + 42 + 6) / 8, 5);
      expect(weightValues(layer, 'moving_variance')[0]).toBeCloseTo((12 + 48 + 36) / 8, 5);
    });

    test("a remainder of one follows the batch-of-one rule: output β, left out under 'unbiased', with a warning", () => {
      const layer = built(
        layers.batchNorm({ momentum: 0, virtualBatchSize: 2, name: 'gbn' }),
        [5, 1],
      );
      randomizeWeights(layer, 12);
      const beta = weightValues(layer, 'beta')[0];
      const y = layer.apply(tf.tensor2d([[1], [3], [10], [14], [6]]), {
        training: true,
      }) as tf.Tensor;
      expect(y.dataSync()[4]).toBeCloseTo(beta, 6);
      expect(weightValues(layer, 'moving_mean')).toEqual([7]);
      expect(weightValues(layer, 'moving_variance')).toEqual([5]); // (2 + 8)/2
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0][0]).toMatch(
        /^BatchNorm 'gbn': the last virtual batch of a training batch has m = 1 element\(s\) per channel \(input shape \[5,1\], virtualBatchSize 2\).*left out/,
      );
      layer.apply(tf.tensor2d([[1], [3], [10], [14], [6]]), { training: true });
      expect(warn).toHaveBeenCalledTimes(1);
      // 'biased' counts it, with σ² = 0: means (2·2 + 2·12 + 1·6)/5, variances (2·1 + 2·4 + 0)/5.
      const biased = built(
        layers.batchNorm({ momentum: 0, virtualBatchSize: 2, varianceCorrection: 'biased' }),
        [5, 1],
      );
      biased.apply(tf.tensor2d([[1], [3], [10], [14], [6]]), { training: true });
      expect(weightValues(biased, 'moving_mean')[0]).toBeCloseTo(34 / 5, 5);
      expect(weightValues(biased, 'moving_variance')[0]).toBeCloseTo(10 / 5, 5);
      expect(warn).toHaveBeenCalledTimes(1);
    });

    test('with a mask: each virtual batch weighs by its unmasked count; an empty one is left out', () => {
      const layer = built(layers.batchNorm({ momentum: 0, virtualBatchSize: 2 }), [6, 3, 1]);
      const values = [
        [1, 3, 99],
        [5, 99, 99], // virtual batch 1: 1, 3, 5 (m = 3)
        [99, 99, 99],
        [99, 99, 99], // virtual batch 2: nothing
        [10, 99, 99],
        [14, 18, 99], // virtual batch 3: 10, 14, 18 (m = 3)
      ];
      const x = tf.tensor3d(values.map((r) => r.map((v) => [v])));
      const mask = tf.tensor2d(
        values.map((r) => r.map((v) => v !== 99)),
        [6, 3],
        'bool',
      );
      layer.apply(x, { training: true, mask });
      expect(weightValues(layer, 'moving_mean')[0]).toBeCloseTo((3 + 14) / 2, 5);
      expect(weightValues(layer, 'moving_variance')[0]).toBeCloseTo((4 + 16) / 2, 5);
    });

    test('cumulative momentum counts one batch per step, and channels-first matches the formula', () => {
      const layer = built(
        layers.batchNorm({ momentum: null, axis: 1, virtualBatchSize: 2 }),
        [4, 2, 3],
      );
      const batches = [0, 1].map((i) => tf.randomNormal([4, 2, 3], i, 1, 'float32', 20 + i));
      for (const b of batches) layer.apply(b, { training: true });
      expect(weightValues(layer, 'num_batches_tracked')).toEqual([2]);
      // Per step: channel c of virtual batch g has the 2 × 3 values x[g·2 … g·2+1, c, :].
      const pooled = (b: tf.Tensor) => {
        const data = b.arraySync() as number[][][];
        return [0, 1].map((c) => {
          const groups = [0, 2].map((g) =>
            moments64([0, 1].flatMap((i) => data[g + i][c].map((v) => [v]))),
          );
          return {
            mean: (groups[0].mean[0] + groups[1].mean[0]) / 2,
            variance: ((groups[0].variance[0] + groups[1].variance[0]) / 2) * (6 / 5),
          };
        });
      };
      const [p0, p1] = batches.map(pooled);
      weightValues(layer, 'moving_mean').forEach((v, c) =>
        expect(v).toBeCloseTo((p0[c].mean + p1[c].mean) / 2, 5),
      );
      weightValues(layer, 'moving_variance').forEach((v, c) =>
        expect(v).toBeCloseTo((p0[c].variance + p1[c].variance) / 2, 5),
      );
    });
  },
);

describe('ops.virtualBatches and ops.poolVirtualBatchStatistics', () => {
  test('split a batch into full virtual batches and a remainder', () => {
    expect(ops.virtualBatches(12, 4)).toEqual([{ start: 0, groups: 3, size: 4 }]);
    expect(ops.virtualBatches(10, 4)).toEqual([
      { start: 0, groups: 2, size: 4 },
      { start: 8, groups: 1, size: 2 },
    ]);
    expect(ops.virtualBatches(3, 4)).toEqual([{ start: 0, groups: 1, size: 3 }]);
  });

  test('oneBlockPerVirtualBatch makes every virtual batch its own block', () => {
    expect(ops.oneBlockPerVirtualBatch(ops.virtualBatches(10, 4))).toEqual([
      { start: 0, groups: 1, size: 4 },
      { start: 4, groups: 1, size: 4 },
      { start: 8, groups: 1, size: 2 },
    ]);
    expect(ops.oneBlockPerVirtualBatch(ops.virtualBatches(3, 4))).toEqual([
      { start: 0, groups: 1, size: 3 },
    ]);
  });

  test('static and tensor counts give the same pooled statistics', () => {
    const means = tf.tensor2d([
      [1, 2],
      [3, 6],
      [5, 0],
    ]);
    const variances = tf.tensor2d([
      [1, 1],
      [2, 4],
      [0, 0],
    ]);
    const a = ops.poolVirtualBatchStatistics(means, variances, [4, 2, 1], 'unbiased');
    const b = ops.poolVirtualBatchStatistics(
      means,
      variances,
      tf.tensor2d([[4], [2], [1]]),
      'unbiased',
    );
    // Weights 4, 2, 0 (m = 1 left out): mean (4·1 + 2·3)/6; variance (4·1·4/3 + 2·2·2)/6.
    expect(a.mean.dataSync()[0]).toBeCloseTo(10 / 6, 6);
    expect(a.mean.dataSync()[1]).toBeCloseTo(20 / 6, 6);
    expect(a.variance.dataSync()[0]).toBeCloseTo((16 / 3 + 8) / 6, 6);
    expect(a.count).toBe(6);
    expect(maxAbsDiff(a.mean, b.mean)).toBeLessThan(1e-6);
    expect(maxAbsDiff(a.variance, b.variance)).toBeLessThan(1e-6);
    expect((b.count as tf.Tensor).dataSync()[0]).toBe(6);
  });
});

describe('Ghost BatchNorm in a model', () => {
  test('inference is plain BN; fit with a ragged last batch; no tensor leaks', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [4, 4, 1], filters: 3, kernelSize: 3, useBias: false }),
        layers.batchNorm({
          virtualBatchSize: 4,
          renorm: true,
          renormClipping: { rmax: 2, dmax: 1 },
        }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 1 }),
      ],
    });
    model.compile({ optimizer: tf.train.sgd(0.01), loss: 'meanSquaredError' });
    const x = tf.randomNormal([14, 4, 4, 1], 0, 1, 'float32', 30);
    const y = tf.randomNormal([14, 1], 0, 1, 'float32', 31);
    await model.fit(x, y, { epochs: 1, batchSize: 6, verbose: 0 });
    const plain = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [4, 4, 1], filters: 3, kernelSize: 3, useBias: false }),
        layers.batchNorm(),
        tf.layers.flatten(),
        tf.layers.dense({ units: 1 }),
      ],
    });
    const w = model.getWeights();
    plain.setWeights(w);
    expect(maxAbsDiff(model.predict(x) as tf.Tensor, plain.predict(x) as tf.Tensor)).toBe(0);
    const leaked = await leakedTensors(async () => {
      await model.fit(x, y, { epochs: 2, batchSize: 6, verbose: 0 });
      tf.dispose(model.predict(x) as tf.Tensor);
    });
    expect(leaked).toBe(0);
  });
});

describe('virtualBatchSize errors', () => {
  test.each([
    [1, /expected virtualBatchSize to be an integer ≥ 2, or null, received: virtualBatchSize=1\./],
    [0, /received: virtualBatchSize=0/],
    [2.5, /received: virtualBatchSize=2\.5/],
    ['4', /received: virtualBatchSize="4"/],
  ])('virtualBatchSize %j', (value, message) => {
    expect(() => layers.batchNorm({ name: 'g', virtualBatchSize: value as number })).toThrow(
      message,
    );
    expect(() => layers.batchNorm({ name: 'g', virtualBatchSize: value as number })).toThrow(
      /^BatchNorm 'g'/,
    );
  });

  test('the channel axis cannot be the batch axis', () => {
    const layer = layers.batchNorm({ axis: 0, virtualBatchSize: 2, name: 'g0' });
    expect(() => layer.build([4, 3])).toThrow(
      /BatchNorm 'g0': expected axis not to be the batch axis 0 with virtualBatchSize 2, received: axis=0/,
    );
  });
});
