/**
 * Issue 11, item 3: masked positions are excluded from μ_B, σ²_B and m (Keras 3
 * `BatchNormalization._moments` with a mask); every position is still normalized.
 */
import * as tf from '@tensorflow/tfjs';
import { layers } from 'tfjs-dropnorm';
import { built, randomizeWeights, snapshot, unchanged, weightValues } from './batch_norm_helpers';
import { leakedTensors, maxAbsDiff } from './helpers';

const B = 4;
const T = 5;
const C = 3;
const EPS = 1e-3;
/** Ragged: real timesteps per sequence; the rest is padding. */
const LENGTHS = [5, 3, 1, 2];
const PAD = 7.5;

/** [B, T] mask (true = real timestep) and a padded [B, T, C] batch whose padding is PAD. */
function paddedBatch(seed: number, lengths = LENGTHS): { x: tf.Tensor; mask: tf.Tensor } {
  const values = tf.randomNormal([B, T, C], 2, 3, 'float32', seed).dataSync().slice();
  const mask = new Array<boolean>(B * T);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      mask[b * T + t] = t < lengths[b];
      if (t >= lengths[b]) for (let c = 0; c < C; c++) values[(b * T + t) * C + c] = PAD;
    }
  return { x: tf.tensor3d(values, [B, T, C]), mask: tf.tensor2d(mask, [B, T], 'bool') };
}

/** Float64 per-channel mean and biased variance over the real timesteps, and their count. */
function reference64(x: tf.Tensor, mask: tf.Tensor) {
  const xs = x.dataSync();
  const ms = mask.dataSync();
  const n = Array.from(ms).reduce((a, v) => a + v, 0);
  const mean = new Array<number>(C).fill(0);
  const variance = new Array<number>(C).fill(0);
  for (let i = 0; i < B * T; i++) if (ms[i]) for (let c = 0; c < C; c++) mean[c] += xs[i * C + c];
  for (let c = 0; c < C; c++) mean[c] /= n;
  for (let i = 0; i < B * T; i++)
    if (ms[i]) for (let c = 0; c < C; c++) variance[c] += (xs[i * C + c] - mean[c]) ** 2;
  for (let c = 0; c < C; c++) variance[c] /= n;
  return { mean, variance, n };
}

/** y = γ(x−μ)/√(σ²+ε)+β with masked moments, by plain tf ops (differentiable by autodiff). */
function direct(x: tf.Tensor, w: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, axis: number) {
  const axes = [...Array(x.rank).keys()].filter((a) => a !== axis);
  const shape = x.shape.map((d, i) => (i === axis ? d : 1));
  const n = tf.sum(w, axes, true);
  const mu = tf.div(tf.sum(tf.mul(x, w), axes, true), n);
  const s2 = tf.div(tf.sum(tf.mul(w, tf.square(tf.sub(x, mu))), axes, true), n);
  const xHat = tf.div(tf.sub(x, mu), tf.sqrt(tf.add(s2, EPS)));
  return tf.add(tf.mul(xHat, tf.reshape(gamma, shape)), tf.reshape(beta, shape));
}

describe('BatchNorm masked moments', () => {
  test('rank 3, ragged masks: output and running statistics equal a float64 reference', () => {
    const momentum = 0.8;
    const { x, mask } = paddedBatch(1);
    const layer = built(layers.batchNorm({ momentum }), [B, T, C]);
    randomizeWeights(layer, 2);
    const [gamma, beta, mean0, var0] = snapshot(layer).map((t) => Array.from(t.dataSync()));
    const y = (layer.apply(x, { training: true, mask }) as tf.Tensor).dataSync();
    const ref = reference64(x, mask);
    expect(ref.n).toBe(11);
    const xs = x.dataSync();
    // Every position, padding included, is normalized with the masked statistics (Keras 3).
    for (let i = 0; i < B * T * C; i++) {
      const c = i % C;
      const expected =
        (gamma[c] * (xs[i] - ref.mean[c])) / Math.sqrt(ref.variance[c] + EPS) + beta[c];
      expect(Math.abs(y[i] - expected)).toBeLessThan(1e-5 * (1 + Math.abs(expected)));
    }
    const mean = weightValues(layer, 'moving_mean');
    const variance = weightValues(layer, 'moving_variance');
    for (let c = 0; c < C; c++) {
      const fed = (ref.variance[c] * ref.n) / (ref.n - 1); // Bessel with the unmasked count
      expect(mean[c]).toBeCloseTo(momentum * mean0[c] + (1 - momentum) * ref.mean[c], 5);
      expect(variance[c]).toBeCloseTo(momentum * var0[c] + (1 - momentum) * fed, 5);
    }
  });

  test.each([
    ['channels-last [B, T, C]', -1],
    ['channels-first [B, C, T]', 1],
  ])('%s: the fused backward equals tf.grad of the direct formula', (_, axis) => {
    const { x: xLast, mask } = paddedBatch(3);
    const x = axis === 1 ? tf.transpose(xLast, [0, 2, 1]) : xLast;
    const ax = axis === 1 ? 1 : 2;
    const layer = built(layers.batchNorm({ axis }), x.shape);
    randomizeWeights(layer, 4);
    const [gamma, beta] = snapshot(layer);
    const dy = tf.randomNormal(x.shape, 0, 1, 'float32', 5);
    const w = tf.expandDims(tf.cast(mask, 'float32'), ax);
    const [dxRef, dGammaRef, dBetaRef] = tf.grads((xx, g, b) =>
      tf.sum(tf.mul(direct(xx, w, g, b, ax), dy)),
    )([x, gamma, beta]);
    const loss = (xx: tf.Tensor) =>
      tf.sum(tf.mul(layer.apply(xx, { training: true, mask }) as tf.Tensor, dy)) as tf.Scalar;
    const dx = tf.grad(loss)(x);
    const { grads } = tf.variableGrads(() => loss(x));
    const [dGamma, dBeta] = layer.trainableWeights.map((v) => grads[v.name]);
    expect(maxAbsDiff(dx, dxRef)).toBeLessThan(1e-5);
    expect(maxAbsDiff(dGamma, dGammaRef)).toBeLessThan(1e-4);
    expect(maxAbsDiff(dBeta, dBetaRef)).toBeLessThan(1e-5);
    // Not vacuous: the unmasked formula's gradient is far from it.
    const [dxUnmasked] = tf.grads((xx) =>
      tf.sum(tf.mul(direct(xx, tf.onesLike(w), gamma, beta, ax), dy)),
    )([x]);
    expect(maxAbsDiff(dx, dxUnmasked)).toBeGreaterThan(1e-2);
  });

  test('an all-true mask gives exactly the unmasked statistics', () => {
    const x = tf.randomNormal([B, T, C], 1, 2, 'float32', 6);
    const a = built(layers.batchNorm({ momentum: 0 }), [B, T, C]);
    const b = built(layers.batchNorm({ momentum: 0 }), [B, T, C]);
    const ya = a.apply(x, { training: true, mask: tf.ones([B, T], 'bool') }) as tf.Tensor;
    const yb = b.apply(x, { training: true }) as tf.Tensor;
    expect(maxAbsDiff(ya, yb)).toBeLessThan(1e-5);
    a.getWeights().forEach((v, i) => expect(maxAbsDiff(v, b.getWeights()[i])).toBeLessThan(1e-5));
  });
});

describe('a mask leaving fewer than 2 elements per channel follows the batch-of-one rule', () => {
  const one = [1, 0, 0, 0];
  const none = [0, 0, 0, 0];

  test("one unmasked element: 'unbiased' keeps the statistics, 'biased' feeds μ = x and σ² = 0", () => {
    const { x, mask } = paddedBatch(7, one);
    const unbiased = built(layers.batchNorm({ momentum: 0.5 }), [B, T, C]);
    randomizeWeights(unbiased, 8);
    const before = snapshot(unbiased);
    unbiased.apply(x, { training: true, mask });
    expect(unchanged(unbiased, before)).toBe(true);

    const biased = built(layers.batchNorm({ momentum: 0.5, varianceCorrection: 'biased' }), [
      B,
      T,
      C,
    ]);
    biased.setWeights(before);
    biased.apply(x, { training: true, mask });
    const first = Array.from(x.dataSync().slice(0, C));
    const mean0 = Array.from(before[2].dataSync());
    const var0 = Array.from(before[3].dataSync());
    weightValues(biased, 'moving_mean').forEach((v, c) =>
      expect(v).toBeCloseTo(0.5 * mean0[c] + 0.5 * first[c], 5),
    );
    weightValues(biased, 'moving_variance').forEach((v, c) =>
      expect(v).toBeCloseTo(0.5 * var0[c], 6),
    );
  });

  test.each(['unbiased', 'biased'] as const)(
    '%s, every position masked: statistics unchanged; output finite, x normalized with μ = σ² = 0 (Keras 3)',
    (varianceCorrection) => {
      const { x, mask } = paddedBatch(9, none);
      const layer = built(layers.batchNorm({ varianceCorrection }), [B, T, C]);
      randomizeWeights(layer, 10);
      const before = snapshot(layer);
      const y = layer.apply(x, { training: true, mask }) as tf.Tensor;
      expect(unchanged(layer, before)).toBe(true);
      const [gamma, beta] = before;
      const expected = tf.add(tf.mul(tf.div(x, Math.sqrt(EPS)), gamma), beta);
      expect(maxAbsDiff(y, expected)).toBeLessThan(1e-3);
      const dx = tf.grad((xx: tf.Tensor) =>
        tf.sum(layer.apply(xx, { training: true, mask }) as tf.Tensor),
      )(x);
      expect(tf.all(tf.isFinite(dx)).dataSync()[0]).toBe(1);
    },
  );

  test('cumulative mode does not count a masked batch with one element', () => {
    const layer = built(layers.batchNorm({ momentum: null }), [B, T, C]);
    const full = paddedBatch(11);
    layer.apply(full.x, { training: true, mask: full.mask });
    const sparse = paddedBatch(12, one);
    layer.apply(sparse.x, { training: true, mask: sparse.mask });
    expect(weightValues(layer, 'num_batches_tracked')).toEqual([1]);
    const ref = reference64(full.x, full.mask);
    weightValues(layer, 'moving_mean').forEach((v, c) => expect(v).toBeCloseTo(ref.mean[c], 5));
  });
});

describe('masks from the model: tf.layers.masking and embeddings with maskZero', () => {
  /** Masking(PAD) → BN → TimeDistributed(Dense 1); one fit step with momentum 0. */
  async function fitOnce(bn: tf.layers.Layer, x: tf.Tensor): Promise<tf.layers.Layer> {
    const model = tf.sequential({
      layers: [
        tf.layers.masking({ maskValue: PAD, inputShape: [T, C] }),
        bn,
        tf.layers.timeDistributed({
          layer: tf.layers.dense({
            units: 1,
            kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
          }),
        }),
      ],
    });
    model.compile({ optimizer: tf.train.sgd(0.01), loss: 'meanSquaredError' });
    await model.fit(x, tf.zeros([B, T, 1]), { epochs: 1, batchSize: B, verbose: 0 });
    return model.layers[1];
  }

  test('the pack learns the real timesteps; the built-in learns the padding (recorded)', async () => {
    const { x, mask } = paddedBatch(13);
    const ref = reference64(x, mask);
    const ours = await fitOnce(layers.batchNorm({ momentum: 0 }), x);
    const builtin = await fitOnce(tf.layers.batchNormalization({ momentum: 0 }), x);
    const ourMean = weightValues(ours, 'moving_mean');
    const theirMean = Array.from(builtin.getWeights()[2].dataSync());
    // tf.layers.masking zeroes the padded timesteps; the built-in averages those zeros in.
    const zeroed = tf.mul(x, tf.expandDims(tf.cast(mask, 'float32'), 2));
    const overAll = Array.from(tf.mean(zeroed, [0, 1]).dataSync());
    for (let c = 0; c < C; c++) {
      expect(ourMean[c]).toBeCloseTo(ref.mean[c], 5);
      expect(theirMean[c]).toBeCloseTo(overAll[c], 5);
      expect(Math.abs(theirMean[c] - ref.mean[c])).toBeGreaterThan(0.2);
    }
  });

  test('an embedding with maskZero: padding index 0 is excluded', async () => {
    const ids = tf.tensor2d(
      [
        [3, 1, 4, 0, 0],
        [2, 0, 0, 0, 0],
        [5, 2, 6, 5, 3],
        [1, 4, 0, 0, 0],
      ],
      [B, T],
    );
    const embedding = tf.layers.embedding({
      inputDim: 8,
      outputDim: C,
      maskZero: true,
      inputLength: T,
      embeddingsInitializer: tf.initializers.randomNormal({ seed: 14 }),
    });
    const bn = layers.batchNorm({ momentum: 0 });
    const model = tf.sequential({ layers: [embedding, bn] });
    model.compile({ optimizer: tf.train.sgd(0.01), loss: 'meanSquaredError' });
    const e = embedding.apply(ids) as tf.Tensor;
    const mask = tf.notEqual(ids, 0);
    const ref = reference64(e, mask);
    await model.fit(ids, tf.zeros([B, T, C]), { epochs: 1, batchSize: B, verbose: 0 });
    weightValues(bn, 'moving_mean').forEach((v, c) => expect(v).toBeCloseTo(ref.mean[c], 5));
  });

  test('no tensor leaks over masked fit steps and masked training calls', async () => {
    const { x, mask } = paddedBatch(15);
    const model = tf.sequential({
      layers: [tf.layers.masking({ maskValue: PAD, inputShape: [T, C] }), layers.batchNorm()],
    });
    model.compile({ optimizer: tf.train.sgd(0.01), loss: 'meanSquaredError' });
    const y = tf.zeros([B, T, C]);
    await model.fit(x, y, { epochs: 1, batchSize: 2, verbose: 0 });
    expect(
      await leakedTensors(() => model.fit(x, y, { epochs: 3, batchSize: 2, verbose: 0 })),
    ).toBe(0);
    const bn = model.layers[1];
    const leak = await leakedTensors(() => {
      tf.dispose(bn.apply(x, { training: true, mask }) as tf.Tensor);
      tf.dispose(
        tf.grad((xx: tf.Tensor) => tf.sum(bn.apply(xx, { training: true, mask }) as tf.Tensor))(x),
      );
    });
    expect(leak).toBe(0);
  });
});

describe('mask validation', () => {
  test('a mask that is not the input shape without the channel axis is an error naming both shapes', () => {
    const layer = built(layers.batchNorm({ name: 'bn_mask' }), [B, T, C]);
    const x = tf.ones([B, T, C]);
    expect(() => layer.apply(x, { training: true, mask: tf.ones([B, C], 'bool') })).toThrow(
      /BatchNorm 'bn_mask': expected mask shape to be the input shape without the channel axis -1, \[4,5\], received: mask shape=\[4,3\]\. Received input shape \[4,5,3\]/,
    );
    // Inference ignores the mask, as before (moving statistics only).
    expect(() => layer.apply(x, { mask: tf.ones([B, C], 'bool') })).not.toThrow();
  });
});
