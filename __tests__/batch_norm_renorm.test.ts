/**
 * Issue 15, item 1: Batch Renormalization (Ioffe 2017, arXiv:1702.03275, Algorithm 1) on the
 * pack's BatchNorm: forward and backward against a float64 reference of Algorithm 1 (clipping on
 * both sides of every boundary, r and d constant in the gradient), plain BN at rmax = 1, dmax = 0,
 * the clipping ramp, the statistics, channels-first, masks, serialization, the model transforms.
 */
import * as tf from '@tensorflow/tfjs';
import {
  BatchNorm,
  convertToBuiltins,
  exportForInference,
  foldBatchNorm,
  layers,
  mcPredict,
  recalibrateBatchNorm,
} from 'tfjs-dropnorm';
import {
  built,
  moments64,
  randomizeWeights,
  snapshot,
  unchanged,
  weightValues,
} from './batch_norm_helpers';
import { leakedTensors, maxAbsDiff } from './helpers';

const EPS = 1e-3;

const clip = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);

/**
 * Algorithm 1 of the paper in float64 on rows [M][C], with the backward of y = γ(x̂·r + d) + β for
 * r, d constant: dx = γr/σ_B·(dy − mean(dy) − x̂·mean(dy·x̂)), dγ = Σ dy·(x̂r + d), dβ = Σ dy.
 */
function algorithm1(
  x: number[][],
  dy: number[][],
  p: { gamma: number[]; beta: number[]; mu: number[]; variance: number[] },
  limits: { rmin: number; rmax: number; dmax: number },
) {
  const m = x.length;
  const { mean: muB, variance: varB } = moments64(x);
  const c = muB.length;
  const sigB = varB.map((v) => Math.sqrt(v + EPS));
  const sigma = p.variance.map((v) => Math.sqrt(v + EPS));
  const r = sigB.map((s, j) => clip(s / sigma[j], limits.rmin, limits.rmax));
  const d = muB.map((mu, j) => clip((mu - p.mu[j]) / sigma[j], -limits.dmax, limits.dmax));
  const xHat = x.map((row) => row.map((v, j) => (v - muB[j]) / sigB[j]));
  const y = xHat.map((row) => row.map((v, j) => p.gamma[j] * (v * r[j] + d[j]) + p.beta[j]));
  const dBeta = Array.from({ length: c }, (_, j) => dy.reduce((s, row) => s + row[j], 0));
  const dyXHat = Array.from({ length: c }, (_, j) =>
    dy.reduce((s, row, i) => s + row[j] * xHat[i][j], 0),
  );
  const dGamma = dyXHat.map((v, j) => v * r[j] + dBeta[j] * d[j]);
  const dx = x.map((row, i) =>
    row.map(
      (_, j) =>
        ((p.gamma[j] * r[j]) / sigB[j]) * (dy[i][j] - dBeta[j] / m - (xHat[i][j] * dyXHat[j]) / m),
    ),
  );
  return { y, dx, dGamma, dBeta, r, d, muB, varB, sigma };
}

const rowsOf = (t: tf.Tensor) => t.arraySync() as number[][];

/** One training call of `layer` on `x` that returns its output and the gradients of Σ y·dy. */
function trainCall(layer: tf.layers.Layer, x: tf.Tensor, dy: tf.Tensor, kwargs = {}) {
  const xv = tf.variable(x);
  let y!: tf.Tensor;
  const { grads, value } = tf.variableGrads(() => {
    y = tf.keep(layer.apply(xv, { training: true, ...kwargs }) as tf.Tensor);
    return tf.sum(tf.mul(y, dy)) as tf.Scalar;
  });
  const [dGamma, dBeta] = layer.trainableWeights.map((w) => grads[w.name]);
  const out = { y, dx: grads[xv.name], dGamma, dBeta };
  value.dispose();
  xv.dispose();
  return out;
}

describe('Batch Renormalization against a float64 reference of Algorithm 1', () => {
  // Channel j sits on a chosen side of a boundary: r just above rmax, r just below 1/rmax, d just
  // above dmax, d just below −dmax, nothing clipped, and r and d just inside their limits.
  const RMAX = 2;
  const DMAX = 0.5;
  const LIMITS = { rmin: 1 / RMAX, rmax: RMAX, dmax: DMAX };
  const R_TARGET = [RMAX * 1.01, (1 / RMAX) * 0.99, 1.2, 0.8, 1.1, RMAX * 0.99];
  const D_TARGET = [0.1, -0.2, DMAX * 1.01, -DMAX * 1.01, 0.3, DMAX * 0.99];
  const M = 8;
  const C = R_TARGET.length;

  function setup(momentum: number, renormMomentum: number) {
    const x = tf.add(
      tf.mul(tf.randomNormal([M, C], 0, 1, 'float32', 3), tf.tensor1d([1, 2, 0.5, 3, 1, 1.5])),
      tf.tensor1d([0, 1, -2, 4, 0.5, -1]),
    );
    const rows = rowsOf(x);
    const { mean: muB, variance: varB } = moments64(rows);
    // Reference statistics that put each channel where R_TARGET / D_TARGET say, stored in float32.
    const sigma = varB.map((v, j) => Math.sqrt(v + EPS) / R_TARGET[j]);
    const variance = sigma.map((s) => Math.fround(s * s - EPS));
    const mu = muB.map((m, j) => Math.fround(m - D_TARGET[j] * sigma[j]));
    const gamma = [1.5, 0.7, 1, 2, 0.9, 1.2];
    const beta = [0.1, -0.3, 0, 0.5, 0.2, -0.1];
    const moving = { mean: [0.2, 0, 0, 1, 0, -1], variance: [1, 2, 0.5, 1, 1, 3] };
    const layer = built(
      layers.batchNorm({
        renorm: true,
        renormClipping: { rmax: RMAX, dmax: DMAX },
        momentum,
        renormMomentum,
      }),
      [M, C],
    );
    layer.setWeights(
      [gamma, beta, moving.mean, moving.variance, mu, variance].map((v) => tf.tensor1d(v)),
    );
    const dy = tf.randomNormal([M, C], 0, 1, 'float32', 4);
    return { x, rows, dy, layer, gamma, beta, mu, variance, moving };
  }

  test('outputs, r and d hit each clipping boundary on the intended side', () => {
    const s = setup(0.9, 0.8);
    const ref = algorithm1(rowsOf(s.x), rowsOf(s.dy), s, LIMITS);
    expect(ref.r.map((r) => Number(r.toFixed(6)))).toEqual([
      RMAX,
      1 / RMAX,
      expect.any(Number),
      expect.any(Number),
      expect.any(Number),
      expect.any(Number),
    ]);
    expect(ref.r[5]).toBeLessThan(RMAX);
    expect(ref.d[2]).toBeCloseTo(DMAX, 12);
    expect(ref.d[3]).toBeCloseTo(-DMAX, 12);
    expect(ref.d[5]).toBeLessThan(DMAX);
    const out = trainCall(s.layer, s.x, s.dy);
    expect(maxAbsDiff(out.y, tf.tensor2d(ref.y))).toBeLessThan(2e-5);
  });

  test('gradients: r and d are constants (stop_gradient), dγ = Σ dy·(x̂r + d), dβ = Σ dy', () => {
    const s = setup(0.9, 0.8);
    const ref = algorithm1(rowsOf(s.x), rowsOf(s.dy), s, LIMITS);
    const out = trainCall(s.layer, s.x, s.dy);
    expect(maxAbsDiff(out.dx, tf.tensor2d(ref.dx))).toBeLessThan(2e-5);
    expect(maxAbsDiff(out.dGamma, tf.tensor1d(ref.dGamma))).toBeLessThan(2e-5);
    expect(maxAbsDiff(out.dBeta, tf.tensor1d(ref.dBeta))).toBeLessThan(2e-5);
    // Through r and d the unclipped channel 4 would be y = γ(x − μ)/σ + β, whose derivative is
    // γ/σ·dy: far from what stop_gradient gives.
    const full = rowsOf(s.dy).map((row) => (row[4] * s.gamma[4]) / ref.sigma[4]);
    const ours = rowsOf(out.dx).map((row) => row[4]);
    expect(Math.max(...full.map((v, i) => Math.abs(v - ours[i])))).toBeGreaterThan(0.1);
  });

  test('the fused backward equals tf.grad of a direct implementation with r, d constant', () => {
    const s = setup(0.9, 0.8);
    const ref = algorithm1(rowsOf(s.x), rowsOf(s.dy), s, LIMITS);
    const [r, d] = [tf.tensor1d(ref.r), tf.tensor1d(ref.d)];
    const [gamma, beta] = [tf.tensor1d(s.gamma), tf.tensor1d(s.beta)];
    const direct = (x: tf.Tensor) => {
      const { mean, variance } = tf.moments(x, 0, true);
      const xHat = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, EPS)));
      return tf.add(tf.mul(gamma, tf.add(tf.mul(xHat, r), d)), beta);
    };
    const expected = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(direct(x), s.dy)))(s.x);
    const out = trainCall(s.layer, s.x, s.dy);
    expect(maxAbsDiff(out.dx, expected)).toBeLessThan(2e-5);
    expect(maxAbsDiff(out.y, direct(s.x))).toBeLessThan(2e-5);
  });

  test('moving statistics as plain BN (momentum); renorm statistics the same with renormMomentum', () => {
    const s = setup(0.9, 0.8);
    const { muB, varB } = algorithm1(rowsOf(s.x), rowsOf(s.dy), s, {
      rmin: 0,
      rmax: Infinity,
      dmax: Infinity,
    });
    s.layer.apply(s.x, { training: true });
    const unbiased = varB.map((v) => (v * M) / (M - 1));
    const check = (name: string, old: number[], value: number[], momentum: number) =>
      weightValues(s.layer, name).forEach((v, j) =>
        expect(v).toBeCloseTo(momentum * old[j] + (1 - momentum) * value[j], 5),
      );
    check('moving_mean', s.moving.mean, muB, 0.9);
    check('moving_variance', s.moving.variance, unbiased, 0.9);
    check('renorm_mean', s.mu, muB, 0.8);
    check('renorm_variance', s.variance, unbiased, 0.8);
  });
});

describe('rmax = 1, dmax = 0 is plain BatchNorm', () => {
  const cases: Array<[string, number[], number, number | null]> = [
    ['rank 2', [6, 3], -1, null],
    ['rank 4 channels-last', [3, 2, 2, 4], -1, null],
    ['rank 4 channels-first', [3, 4, 2, 2], 1, null],
    ['rank 2, Ghost BN of 2', [6, 3], -1, 2],
  ];
  test.each(cases)(
    '%s: outputs, gradients and statistics over three steps',
    (_, shape, axis, vbs) => {
      const plain = built(layers.batchNorm({ axis, momentum: 0.8, virtualBatchSize: vbs }), shape);
      const renorm = built(
        layers.batchNorm({
          axis,
          momentum: 0.8,
          virtualBatchSize: vbs,
          renorm: true,
          renormClipping: { rmax: 1, dmax: 0 },
        }),
        shape,
      );
      randomizeWeights(renorm, 5);
      plain.setWeights(renorm.getWeights().slice(0, 4));
      for (let step = 0; step < 3; step++) {
        const x = tf.randomNormal(shape, 1, 2, 'float32', 10 + step);
        const dy = tf.randomNormal(shape, 0, 1, 'float32', 20 + step);
        const a = trainCall(plain, x, dy);
        const b = trainCall(renorm, x, dy);
        for (const key of ['y', 'dx', 'dGamma', 'dBeta'] as const) {
          expect(maxAbsDiff(b[key], a[key])).toBeLessThan(1e-6);
        }
      }
      plain
        .getWeights()
        .forEach((w, i) => expect(maxAbsDiff(renorm.getWeights()[i], w)).toBeLessThan(1e-6));
    },
  );

  test('so is the first step of a ramp; later steps are not', () => {
    const shape = [6, 3];
    const plain = built(layers.batchNorm(), shape);
    const ramped = built(
      layers.batchNorm({
        renorm: true,
        renormClipping: { rmax: 3, dmax: 5 },
        renormRamp: { rmaxEnd: 2 },
      }),
      shape,
    );
    randomizeWeights(ramped, 6);
    plain.setWeights(ramped.getWeights().slice(0, 4));
    const x = tf.randomNormal(shape, 1, 2, 'float32', 1);
    const dy = tf.randomNormal(shape, 0, 1, 'float32', 2);
    expect(maxAbsDiff(trainCall(ramped, x, dy).y, trainCall(plain, x, dy).y)).toBeLessThan(1e-6);
    ramped.apply(x, { training: true });
    // Step 2: r ∈ [1/3, 3], d ∈ [−5, 5]: the random renorm statistics now move the output.
    expect(maxAbsDiff(trainCall(ramped, x, dy).y, trainCall(plain, x, dy).y)).toBeGreaterThan(0.01);
  });
});

describe('the clipping ramp (the paper, Section 4)', () => {
  const formula = (t: number, start: number, rEnd: number, dEnd: number, rmin?: number) => {
    const fr = clip((t - start) / (rEnd - start), 0, 1);
    const fd = clip((t - start) / (dEnd - start), 0, 1);
    const rmax = 1 + 2 * fr;
    return { rmax, rmin: rmin === undefined ? 1 / rmax : 1 - (1 - rmin) * fr, dmax: 5 * fd };
  };

  test.each([[undefined], [0.5]])('limits follow the formula step by step (rmin %s)', (rmin) => {
    const layer = built(
      layers.batchNorm({
        renorm: true,
        renormClipping: { rmax: 3, dmax: 5, ...(rmin === undefined ? {} : { rmin }) },
        renormRamp: { start: 2, rmaxEnd: 6, dmaxEnd: 4 },
      }),
      [4, 2],
    );
    const x = tf.randomNormal([4, 2], 0, 1, 'float32', 1);
    for (let t = 0; t < 8; t++) {
      const limits = layer.currentRenormClipping()!;
      const expected = formula(t, 2, 6, 4, rmin);
      expect(limits.rmax).toBeCloseTo(expected.rmax, 6);
      expect(limits.rmin).toBeCloseTo(expected.rmin, 6);
      expect(limits.dmax).toBeCloseTo(expected.dmax, 6);
      layer.apply(x, { training: true });
    }
    expect(weightValues(layer, 'renorm_steps')).toEqual([8]);
    // Inference does not count.
    layer.apply(x);
    expect(weightValues(layer, 'renorm_steps')).toEqual([8]);
  });

  test('fixed limits without a ramp; step 0 before the first call; null without renorm', () => {
    expect(
      layers.batchNorm({ renorm: true, renormClipping: { rmax: 3 } }).currentRenormClipping(),
    ).toEqual({ rmax: 3, rmin: 1 / 3, dmax: Infinity });
    expect(layers.batchNorm({ renorm: true }).currentRenormClipping()).toEqual({
      rmax: Infinity,
      rmin: 0,
      dmax: Infinity,
    });
    expect(layers.batchNorm().currentRenormClipping()).toBeNull();
    // A ramped layer not yet built is at step 0: plain BN.
    expect(
      layers
        .batchNorm({
          renorm: true,
          renormClipping: { rmax: 3, dmax: 5 },
          renormRamp: { rmaxEnd: 9 },
        })
        .currentRenormClipping(),
    ).toEqual({ rmax: 1, rmin: 1, dmax: 0 });
  });
});

describe('renorm with the rest of BatchNorm', () => {
  test('channels-first equals channels-last on the transposed input (outputs, gradients, statistics)', () => {
    const args = { renorm: true, renormClipping: { rmax: 1.5, dmax: 0.3 }, momentum: 0.7 };
    const first = built(layers.batchNorm({ ...args, axis: 1 }), [3, 4, 2, 5]);
    const last = built(layers.batchNorm(args), [3, 2, 5, 4]);
    randomizeWeights(first, 7);
    last.setWeights(first.getWeights());
    const x = tf.randomNormal([3, 4, 2, 5], 1, 2, 'float32', 8);
    const dy = tf.randomNormal([3, 4, 2, 5], 0, 1, 'float32', 9);
    const toLast = (t: tf.Tensor) => tf.transpose(t, [0, 2, 3, 1]);
    const a = trainCall(first, x, dy);
    const b = trainCall(last, toLast(x), toLast(dy));
    expect(maxAbsDiff(toLast(a.y), b.y)).toBeLessThan(1e-5);
    expect(maxAbsDiff(toLast(a.dx), b.dx)).toBeLessThan(1e-5);
    expect(maxAbsDiff(tf.reshape(a.dGamma, [4]), tf.reshape(b.dGamma, [4]))).toBeLessThan(1e-5);
    expect(maxAbsDiff(tf.reshape(a.dBeta, [4]), tf.reshape(b.dBeta, [4]))).toBeLessThan(1e-5);
    first
      .getWeights()
      .forEach((w, i) => expect(maxAbsDiff(w, last.getWeights()[i])).toBeLessThan(1e-5));
    // Not vacuous: the correction clips here (r and d differ from 1 and 0).
    const plain = built(layers.batchNorm({ momentum: 0.7 }), [3, 2, 5, 4]);
    plain.setWeights(first.getWeights().slice(0, 4));
    randomizeWeights(last, 7);
    expect(maxAbsDiff(trainCall(plain, toLast(x), toLast(dy)).y, b.y)).toBeGreaterThan(0.01);
  });

  test('a mask: r and d come from the unmasked moments; masked positions are still normalized', () => {
    const [B, T, C] = [3, 4, 2];
    const mask = tf.tensor2d([1, 1, 1, 0, 1, 1, 0, 0, 1, 0, 0, 0], [B, T], 'bool');
    const x = tf.randomNormal([B, T, C], 2, 3, 'float32', 11);
    const layer = built(
      layers.batchNorm({
        renorm: true,
        renormClipping: { rmax: 2, dmax: 1 },
        renormMomentum: 0.99,
      }),
      [B, T, C],
    );
    randomizeWeights(layer, 12);
    const [gamma, beta, , , mu, variance] = layer.getWeights().map((w) => Array.from(w.dataSync()));
    const xs = x.arraySync() as number[][][];
    const ms = mask.arraySync() as unknown as number[][];
    const real = xs.flatMap((seq, b) => seq.filter((_, t) => ms[b][t]));
    const all = xs.flat();
    const { mean: muB, variance: varB } = moments64(real);
    const sigB = varB.map((v) => Math.sqrt(v + EPS));
    const sigma = variance.map((v) => Math.sqrt(v + EPS));
    const r = sigB.map((s, j) => clip(s / sigma[j], 0.5, 2));
    const d = muB.map((m, j) => clip((m - mu[j]) / sigma[j], -1, 1));
    const expected = all.map((row) =>
      row.map((v, j) => gamma[j] * (((v - muB[j]) / sigB[j]) * r[j] + d[j]) + beta[j]),
    );
    const y = layer.apply(x, { training: true, mask }) as tf.Tensor;
    expect(maxAbsDiff(tf.reshape(y, [B * T, C]), tf.tensor2d(expected))).toBeLessThan(2e-5);
    // The renorm statistics were fed the unmasked moments (10 real timesteps: Bessel 10/9).
    const n = real.length;
    weightValues(layer, 'renorm_variance').forEach((v, j) =>
      expect(v).toBeCloseTo(0.99 * variance[j] + 0.01 * ((varB[j] * n) / (n - 1)), 5),
    );
  });

  test('cumulative momentum: moving statistics average every batch; renorm ones use renormMomentum', () => {
    const layer = built(
      layers.batchNorm({ momentum: null, renorm: true, renormMomentum: 0.5 }),
      [4, 2],
    );
    const batches = [0, 1].map((i) => tf.randomNormal([4, 2], i, 1 + i, 'float32', 30 + i));
    for (const b of batches) layer.apply(b, { training: true });
    const stats = batches.map((b) => moments64(rowsOf(b)));
    const unbiased = (v: number) => (v * 4) / 3;
    weightValues(layer, 'moving_mean').forEach((v, j) =>
      expect(v).toBeCloseTo((stats[0].mean[j] + stats[1].mean[j]) / 2, 5),
    );
    // renorm_mean starts at 0 (the moving-mean initializer): 0 → m₀/2 → m₀/4 + m₁/2.
    weightValues(layer, 'renorm_mean').forEach((v, j) =>
      expect(v).toBeCloseTo(stats[0].mean[j] / 4 + stats[1].mean[j] / 2, 5),
    );
    weightValues(layer, 'renorm_variance').forEach((v, j) =>
      expect(v).toBeCloseTo(
        0.25 + unbiased(stats[0].variance[j]) / 4 + unbiased(stats[1].variance[j]) / 2,
        5,
      ),
    );
    expect(weightValues(layer, 'num_batches_tracked')).toEqual([2]);
  });

  test('without renormMomentum r and d use the moving statistics: the same as separate statistics at renormMomentum = momentum', () => {
    const args = { renorm: true, renormClipping: { rmax: 1.5, dmax: 0.5 }, momentum: 0.8 };
    const shared = built(layers.batchNorm(args), [6, 3]);
    const separate = built(layers.batchNorm({ ...args, renormMomentum: 0.8 }), [6, 3]);
    randomizeWeights(shared, 16);
    const w = shared.getWeights();
    separate.setWeights([...w, w[2], w[3]]);
    for (let step = 0; step < 3; step++) {
      const x = tf.randomNormal([6, 3], 1, 2, 'float32', 17 + step);
      const dy = tf.randomNormal([6, 3], 0, 1, 'float32', 27 + step);
      const a = trainCall(shared, x, dy);
      const b = trainCall(separate, x, dy);
      expect(maxAbsDiff(a.y, b.y)).toBeLessThan(1e-6);
      expect(maxAbsDiff(a.dx, b.dx)).toBeLessThan(1e-6);
    }
    expect(weightValues(separate, 'renorm_variance')).toEqual(
      weightValues(separate, 'moving_variance'),
    );
    // Not vacuous: the clipping binds, so the output is not plain BN's.
    const plain = built(layers.batchNorm({ momentum: 0.8 }), [6, 3]);
    plain.setWeights(shared.getWeights());
    const x = tf.randomNormal([6, 3], 4, 0.3, 'float32', 40);
    expect(
      maxAbsDiff(
        plain.apply(x, { training: true }) as tf.Tensor,
        shared.apply(x, { training: true }) as tf.Tensor,
      ),
    ).toBeGreaterThan(0.01);
  });

  test('a batch of one: x̂ = 0, so y = γ·d + β; the statistics stay as they were', () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const layer = built(
        layers.batchNorm({ renorm: true, renormClipping: { dmax: 0.5 } }),
        [1, 3],
      );
      randomizeWeights(layer, 13);
      const before = snapshot(layer);
      // Without renormMomentum, r and d are taken against the moving statistics.
      const [gamma, beta, mu, variance] = before.map((w) => Array.from(w.dataSync()));
      const x = tf.tensor2d([[0.3, -2, 5]]);
      const y = Array.from((layer.apply(x, { training: true }) as tf.Tensor).dataSync());
      [0.3, -2, 5].forEach((v, j) => {
        const d = clip((v - mu[j]) / Math.sqrt(variance[j] + EPS), -0.5, 0.5);
        expect(y[j]).toBeCloseTo(gamma[j] * d + beta[j], 5);
      });
      expect(unchanged(layer, before)).toBe(true);
      expect(warn).toHaveBeenCalledTimes(1);
    } finally {
      warn.mockRestore();
    }
  });

  test('weights: the built-in four, then renorm_mean, renorm_variance (renormMomentum), renorm_steps', () => {
    const names = (args: Parameters<typeof layers.batchNorm>[0]) =>
      built(layers.batchNorm(args), [2, 3]).weights.map((w) => w.originalName.split('/').pop());
    // r and d use the moving statistics: no weight of their own.
    expect(names({ renorm: true })).toEqual(['gamma', 'beta', 'moving_mean', 'moving_variance']);
    expect(names({ renorm: true, renormMomentum: 0.9 })).toEqual([
      'gamma',
      'beta',
      'moving_mean',
      'moving_variance',
      'renorm_mean',
      'renorm_variance',
    ]);
    expect(
      names({
        renorm: true,
        momentum: null,
        renormMomentum: 0.9,
        renormClipping: { rmax: 2, dmax: 1 },
        renormRamp: { rmaxEnd: 10 },
      }),
    ).toEqual([
      'gamma',
      'beta',
      'moving_mean',
      'moving_variance',
      'num_batches_tracked',
      'renorm_mean',
      'renorm_variance',
      'renorm_steps',
    ]);
  });

  test('inference is plain BN with the moving statistics: the same numbers, bit for bit', () => {
    const renorm = built(
      layers.batchNorm({ renorm: true, renormClipping: { rmax: 2, dmax: 1 } }),
      [5, 3],
    );
    const plain = built(layers.batchNorm(), [5, 3]);
    randomizeWeights(renorm, 14);
    plain.setWeights(renorm.getWeights().slice(0, 4));
    const x = tf.randomNormal([5, 3], 1, 2, 'float32', 15);
    expect(maxAbsDiff(renorm.apply(x) as tf.Tensor, plain.apply(x) as tf.Tensor)).toBe(0);
  });
});

/** A small model with a renorm BN (ramped) between a Dense and a ReLU, and a dropout. */
function renormModel(extra: Parameters<typeof layers.batchNorm>[0] = {}): tf.Sequential {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: 6, inputShape: [4], useBias: false, kernelInitializer: init(1) }),
      layers.batchNorm({
        name: 'rbn',
        renorm: true,
        renormClipping: { rmax: 3, dmax: 5 },
        renormRamp: { start: 1, rmaxEnd: 4, dmaxEnd: 3 },
        renormMomentum: 0.9,
        ...extra,
      }),
      tf.layers.activation({ activation: 'relu' }),
      layers.dropout({ rate: 0.2, seed: 3 }),
      tf.layers.dense({ units: 2, kernelInitializer: init(2) }),
    ],
  });
  model.compile({ optimizer: tf.train.sgd(0.05), loss: 'meanSquaredError' });
  return model;
}

async function saveLoad(model: tf.LayersModel): Promise<tf.LayersModel> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      saved = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return tf.loadLayersModel(tf.io.fromMemory(saved!));
}

describe('renorm models: serialization, transforms, leaks', () => {
  const x = tf.randomNormal([12, 4], 0, 1, 'float32', 40);
  const y = tf.randomNormal([12, 2], 0, 1, 'float32', 41);

  test('save and load keep the config, the renorm statistics and the ramp step; training continues identically', async () => {
    const model = renormModel({ virtualBatchSize: 3 });
    await model.fit(x, y, { epochs: 2, batchSize: 4, shuffle: false, verbose: 0 });
    const loaded = await saveLoad(model);
    loaded.compile({ optimizer: tf.train.sgd(0.05), loss: 'meanSquaredError' });
    const bn = loaded.getLayer('rbn') as BatchNorm;
    expect(bn).toBeInstanceOf(BatchNorm);
    expect(bn.getConfig()).toEqual(model.getLayer('rbn').getConfig());
    expect(bn.getConfig()).toMatchObject({
      renorm: true,
      renormClipping: { rmax: 3, dmax: 5 },
      renormMomentum: 0.9,
      renormRamp: { start: 1, rmaxEnd: 4, dmaxEnd: 3 },
      virtualBatchSize: 3,
    });
    expect(weightValues(bn, 'renorm_steps')).toEqual([6]);
    model.getWeights().forEach((w, i) => expect(maxAbsDiff(loaded.getWeights()[i], w)).toBe(0));
    expect(bn.currentRenormClipping()).toEqual(
      (model.getLayer('rbn') as BatchNorm).currentRenormClipping(),
    );
    // Dropout is off for this comparison: a loaded model restarts its seed sequence.
    for (const m of [model, loaded]) (m.layers[3] as unknown as { rate: number }).rate = 0;
    for (const m of [model, loaded])
      await m.fit(x, y, { epochs: 1, batchSize: 4, shuffle: false, verbose: 0 });
    model
      .getWeights()
      .forEach((w, i) => expect(maxAbsDiff(loaded.getWeights()[i], w)).toBeLessThan(1e-6));
  });

  test('an unbounded clipping survives JSON (no Infinity in the config)', () => {
    const layer = layers.batchNorm({ renorm: true, renormClipping: { rmax: Infinity, dmax: 2 } });
    const config = layer.getConfig();
    expect(JSON.parse(JSON.stringify(config)).renormClipping).toEqual({ dmax: 2 });
    const copy = BatchNorm.fromConfig(BatchNorm, config) as BatchNorm;
    expect(copy.currentRenormClipping()).toEqual({ rmax: Infinity, rmin: 0, dmax: 2 });
  });

  test('foldBatchNorm, exportForInference, recalibrateBatchNorm and mcPredict work unchanged', async () => {
    const model = renormModel({ virtualBatchSize: 4 });
    await model.fit(x, y, { epochs: 2, batchSize: 8, shuffle: false, verbose: 0 });
    const expected = model.predict(x) as tf.Tensor;
    const { model: folded, folded: which } = foldBatchNorm(model);
    expect(which.map((f) => f.batchNorm)).toEqual(['rbn']);
    expect(maxAbsDiff(folded.predict(x) as tf.Tensor, expected)).toBeLessThan(1e-5);
    const exported = exportForInference(model).model;
    expect(exported.layers.every((l) => !l.getClassName().startsWith('Dropnorm'))).toBe(true);
    expect(maxAbsDiff(exported.predict(x) as tf.Tensor, expected)).toBeLessThan(1e-5);
    const mc = mcPredict(model, x, { samples: 3, seed: 1 });
    expect(mc.mean.shape).toEqual([12, 2]);
    const bn = model.getLayer('rbn') as BatchNorm;
    const renormBefore = weightValues(bn, 'renorm_variance');
    await recalibrateBatchNorm(model, x);
    // Population statistics of the BN input (Dense output, Bessel-corrected) in moving_*; the
    // renorm statistics are training state and stay.
    const h = model.layers[0].apply(x) as tf.Tensor;
    const { mean, variance } = moments64(rowsOf(h));
    weightValues(bn, 'moving_mean').forEach((v, j) => expect(v).toBeCloseTo(mean[j], 4));
    weightValues(bn, 'moving_variance').forEach((v, j) =>
      expect(v).toBeCloseTo((variance[j] * 12) / 11, 4),
    );
    expect(weightValues(bn, 'renorm_variance')).toEqual(renormBefore);
  });

  test('convertToBuiltins keeps renorm and Ghost BNs, with the reason', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ units: 3, inputShape: [2] }),
        layers.batchNorm({ name: 'rn', renorm: true }),
        layers.batchNorm({ name: 'gh', virtualBatchSize: 8 }),
        layers.batchNorm({ name: 'plain' }),
      ],
    });
    const { converted, skipped } = convertToBuiltins(model);
    expect(converted.map((c) => c.layer)).toEqual(['plain']);
    expect(skipped.map((s) => s.layer)).toEqual(['rn', 'gh']);
    expect(skipped[0].reason).toMatch(/renorm is true .*Batch Renormalization.*no r, d correction/);
    expect(skipped[1].reason).toMatch(/virtualBatchSize is 8 \(Ghost BatchNorm\)/);
  });

  test('no tensor leaks: fit (ragged last batch), predict, evaluate', async () => {
    const model = renormModel({ virtualBatchSize: 3, momentum: null });
    await model.fit(x, y, { epochs: 1, batchSize: 5, verbose: 0 }); // warms up the optimizer
    const leaked = await leakedTensors(async () => {
      await model.fit(x, y, { epochs: 2, batchSize: 5, verbose: 0 });
      tf.dispose(model.predict(x) as tf.Tensor);
      tf.dispose(model.evaluate(x, y) as tf.Scalar);
    });
    expect(leaked).toBe(0);
  });
});

describe('renorm argument errors name the layer, the argument and the value', () => {
  test.each([
    [
      { renorm: true, renormClipping: { rmax: 0.5 } },
      /expected renormClipping\.rmax ≥ 1 .*received: renormClipping\.rmax=0\.5/,
    ],
    [
      { renorm: true, renormClipping: { rmin: 1.5 } },
      /expected renormClipping\.rmin in \[0, 1\] .*received: renormClipping\.rmin=1\.5/,
    ],
    [
      { renorm: true, renormClipping: { dmax: -1 } },
      /expected renormClipping\.dmax ≥ 0 .*received: renormClipping\.dmax=-1/,
    ],
    [
      { renorm: true, renormClipping: { r_max: 3 } },
      /renormClipping: unknown option 'r_max' \(did you mean 'rmax'\?\)/,
    ],
    [
      { renorm: true, renormMomentum: 1 },
      /expected renormMomentum in \[0, 1\), or null, received: renormMomentum=1/,
    ],
    [{ renormClipping: { rmax: 3 } }, /expected renormClipping to be given only with renorm: true/],
    [{ renormMomentum: 0.9 }, /expected renormMomentum to be given only with renorm: true/],
    [
      { renorm: true, renormRamp: { rmaxEnd: 100 } },
      /expected renormClipping to have finite rmax and dmax with renormRamp/,
    ],
    [
      { renorm: true, renormClipping: { rmax: 3, dmax: 5 }, renormRamp: { start: 10, rmaxEnd: 5 } },
      /expected renormRamp\.rmaxEnd to be a finite step > start \(10\), received: renormRamp\.rmaxEnd=5/,
    ],
    [{ renorm: 'yes' }, /expected renorm to be true or false, received: renorm="yes"/],
  ])('%j', (args, message) => {
    expect(() => layers.batchNorm({ name: 'bn_err', ...(args as object) })).toThrow(message);
    expect(() => layers.batchNorm({ name: 'bn_err', ...(args as object) })).toThrow(
      /^BatchNorm 'bn_err'/,
    );
  });
});

describe('currentRenormClippingAsync: the same limits without a synchronous read', () => {
  test('equals currentRenormClipping at every step of a ramp, reads asynchronously, leaks nothing', async () => {
    const layer = built(
      layers.batchNorm({
        renorm: true,
        renormClipping: { rmax: 3, dmax: 5 },
        renormRamp: { start: 1, rmaxEnd: 4, dmaxEnd: 3 },
      }),
      [4, 2],
    );
    const x = tf.randomNormal([4, 2], 0, 1, 'float32', 1);
    for (let t = 0; t < 5; t++) {
      const before = tf.memory().numTensors;
      // On cpu an async read is a sync read underneath (backend.read calls readSync), so the spy
      // is on the tensor methods that block a GPU backend.
      const dataSync = jest.spyOn(tf.Tensor.prototype, 'dataSync');
      const arraySync = jest.spyOn(tf.Tensor.prototype, 'arraySync');
      let limits;
      try {
        limits = await layer.currentRenormClippingAsync();
        expect(dataSync).not.toHaveBeenCalled();
        expect(arraySync).not.toHaveBeenCalled();
      } finally {
        dataSync.mockRestore();
        arraySync.mockRestore();
      }
      expect(tf.memory().numTensors).toBe(before);
      expect(limits).toEqual(layer.currentRenormClipping());
      tf.tidy(() => {
        layer.apply(x, { training: true });
      });
    }
    // Not vacuous: the ramp moved the limits (step 4: rmax 3, dmax 5).
    expect(await layer.currentRenormClippingAsync()).toEqual({
      rmax: 3,
      rmin: Math.fround(1 / 3),
      dmax: 5,
    });
    expect(await layers.batchNorm().currentRenormClippingAsync()).toBeNull();
    expect(
      await layers
        .batchNorm({ renorm: true, renormClipping: { rmax: 2 } })
        .currentRenormClippingAsync(),
    ).toEqual({ rmax: 2, rmin: 0.5, dmax: Infinity });
  });
});
