import * as tf from '@tensorflow/tfjs';
import { ops } from 'tfjs-dropnorm';
import { randn, relativeDiff } from './fold_helpers';

const { batchNormAffine, foldAffineIntoNextKernel, foldBatchNormWeights, normalizeInference } = ops;

function stats(
  c: number,
  seed: number,
  withGamma = true,
  withBeta = true,
): ops.BatchNormStatistics {
  return {
    gamma: withGamma ? tf.randomUniform([c], 0.5, 2, 'float32', seed) : null,
    beta: withBeta ? tf.randomUniform([c], -1, 1, 'float32', seed + 1) : null,
    movingMean: tf.randomUniform([c], -2, 2, 'float32', seed + 2),
    movingVariance: tf.randomUniform([c], 0.2, 3, 'float32', seed + 3),
    epsilon: 1e-3,
  };
}

/** BN(z) along the last axis, by the formula. */
function bnLast(z: tf.Tensor, s: ops.BatchNormStatistics): tf.Tensor {
  return normalizeInference(
    z,
    s.movingMean,
    s.movingVariance,
    s.gamma,
    s.beta,
    s.epsilon,
    z.rank - 1,
  );
}

describe('batchNormAffine', () => {
  it('is s = γ/√(σ²+ε), t = β − μ·s', () => {
    const { scale, shift } = batchNormAffine({
      gamma: tf.tensor1d([2, 1]),
      beta: tf.tensor1d([1, -1]),
      movingMean: tf.tensor1d([3, 0.5]),
      movingVariance: tf.tensor1d([4 - 1e-3, 0.25 - 1e-3]),
      epsilon: 1e-3,
    });
    expect(Array.from(scale.dataSync())).toEqual([expect.closeTo(1, 6), expect.closeTo(2, 5)]);
    expect(Array.from(shift.dataSync())).toEqual([expect.closeTo(-2, 5), expect.closeTo(-2, 5)]);
  });

  it('takes γ = 1 and β = 0 when scale and center are off', () => {
    const { scale, shift } = batchNormAffine({
      gamma: null,
      beta: null,
      movingMean: tf.tensor1d([1]),
      movingVariance: tf.tensor1d([4]),
      epsilon: 0,
    });
    expect(scale.dataSync()[0]).toBeCloseTo(0.5, 6);
    expect(shift.dataSync()[0]).toBeCloseTo(-0.5, 6);
  });
});

describe('foldBatchNormWeights', () => {
  it("dense [in, out]: x·W' + b' = BN(x·W + b)", () => {
    const x = randn([5, 3], 1);
    const w = randn([3, 4], 2);
    const b = randn([4], 3);
    const s = stats(4, 10);
    const f = foldBatchNormWeights(w, b, s, 'dense');
    const folded = tf.add(tf.matMul(x, f.kernel), f.bias);
    expect(relativeDiff(folded, bnLast(tf.add(tf.matMul(x, w), b), s))).toBeLessThan(1e-5);
  });

  it('treats a missing bias as zero, and missing γ, β as 1, 0', () => {
    const x = randn([5, 3], 1);
    const w = randn([3, 4], 2);
    const s = stats(4, 20, false, false);
    const f = foldBatchNormWeights(w, null, s, 'dense');
    const folded = tf.add(tf.matMul(x, f.kernel), f.bias);
    expect(relativeDiff(folded, bnLast(tf.matMul(x, w), s))).toBeLessThan(1e-5);
  });

  it('conv1d [k, in, out]', () => {
    const x = randn([2, 7, 3], 1);
    const w = randn([3, 3, 5], 2);
    const b = randn([5], 3);
    const s = stats(5, 30);
    const f = foldBatchNormWeights(w, b, s, 'conv1d');
    const conv = (k: tf.Tensor) => tf.conv1d(x as tf.Tensor3D, k as tf.Tensor3D, 1, 'same');
    expect(
      relativeDiff(tf.add(conv(f.kernel), f.bias), bnLast(tf.add(conv(w), b), s)),
    ).toBeLessThan(1e-5);
  });

  it('conv2d [kh, kw, in, out]', () => {
    const x = randn([2, 6, 6, 3], 1);
    const w = randn([3, 3, 3, 4], 2);
    const b = randn([4], 3);
    const s = stats(4, 40);
    const f = foldBatchNormWeights(w, b, s, 'conv2d');
    const conv = (k: tf.Tensor) => tf.conv2d(x as tf.Tensor4D, k as tf.Tensor4D, 1, 'same');
    expect(
      relativeDiff(tf.add(conv(f.kernel), f.bias), bnLast(tf.add(conv(w), b), s)),
    ).toBeLessThan(1e-5);
  });

  it('depthwiseConv2d [kh, kw, in, mult]: output channel i·mult + j', () => {
    const x = randn([2, 5, 5, 3], 1);
    const w = randn([3, 3, 3, 2], 2);
    const b = randn([6], 3);
    const s = stats(6, 50);
    const f = foldBatchNormWeights(w, b, s, 'depthwiseConv2d');
    const conv = (k: tf.Tensor) =>
      tf.depthwiseConv2d(x as tf.Tensor4D, k as tf.Tensor4D, 1, 'same');
    expect(
      relativeDiff(tf.add(conv(f.kernel), f.bias), bnLast(tf.add(conv(w), b), s)),
    ).toBeLessThan(1e-5);
  });

  it('conv2dTranspose [kh, kw, out, in]', () => {
    const x = randn([2, 4, 4, 3], 1);
    const w = randn([3, 3, 5, 3], 2);
    const b = randn([5], 3);
    const s = stats(5, 60);
    const f = foldBatchNormWeights(w, b, s, 'conv2dTranspose');
    const conv = (k: tf.Tensor) =>
      tf.conv2dTranspose(x as tf.Tensor4D, k as tf.Tensor4D, [2, 8, 8, 5], 2, 'same');
    expect(
      relativeDiff(tf.add(conv(f.kernel), f.bias), bnLast(tf.add(conv(w), b), s)),
    ).toBeLessThan(1e-5);
  });

  it('rejects a BN whose size differs from the output channels', () => {
    expect(() => foldBatchNormWeights(randn([3, 4], 1), null, stats(3, 1), 'dense')).toThrow(
      /affine size.*4 output channels.*received: affine size=3/,
    );
    expect(() => foldBatchNormWeights(randn([3, 4], 1), null, stats(4, 1), 'conv2d')).toThrow(
      /kernel rank to be 4 for layout 'conv2d'/,
    );
  });
});

describe('foldAffineIntoNextKernel', () => {
  it("dense: (s·x + t)·W + b = x·W'' + b''", () => {
    const x = randn([5, 3], 1);
    const w = randn([3, 4], 2);
    const b = randn([4], 3);
    const affine = batchNormAffine(stats(3, 70));
    const f = foldAffineIntoNextKernel(w, b, affine, 'dense');
    const ref = tf.add(tf.matMul(tf.add(tf.mul(x, affine.scale), affine.shift), w), b);
    expect(relativeDiff(tf.add(tf.matMul(x, f.kernel), f.bias), ref)).toBeLessThan(1e-5);
  });

  it('conv2d with padding valid', () => {
    const x = randn([2, 6, 6, 3], 1);
    const w = randn([3, 3, 3, 4], 2);
    const affine = batchNormAffine(stats(3, 80));
    const f = foldAffineIntoNextKernel(w, null, affine, 'conv2d');
    const conv = (inp: tf.Tensor, k: tf.Tensor) =>
      tf.conv2d(inp as tf.Tensor4D, k as tf.Tensor4D, 1, 'valid');
    const ref = conv(tf.add(tf.mul(x, affine.scale), affine.shift), w);
    expect(relativeDiff(tf.add(conv(x, f.kernel), f.bias), ref)).toBeLessThan(1e-5);
  });

  it('depthwiseConv2d with padding valid', () => {
    const x = randn([2, 6, 6, 3], 1);
    const w = randn([3, 3, 3, 2], 2);
    const b = randn([6], 3);
    const affine = batchNormAffine(stats(3, 90));
    const f = foldAffineIntoNextKernel(w, b, affine, 'depthwiseConv2d');
    const conv = (inp: tf.Tensor, k: tf.Tensor) =>
      tf.depthwiseConv2d(inp as tf.Tensor4D, k as tf.Tensor4D, 1, 'valid');
    const ref = tf.add(conv(tf.add(tf.mul(x, affine.scale), affine.shift), w), b);
    expect(relativeDiff(tf.add(conv(x, f.kernel), f.bias), ref)).toBeLessThan(1e-5);
  });

  it('refuses conv2dTranspose', () => {
    const affine = batchNormAffine(stats(3, 1));
    expect(() =>
      foldAffineIntoNextKernel(randn([3, 3, 4, 3], 1), null, affine, 'conv2dTranspose' as 'conv2d'),
    ).toThrow(/conv2dTranspose/);
  });
});
