/**
 * RMSNorm (issue 22): Keras 3's published expectations, outputs and gradients against float64
 * and tf.grad of the composite formula, axis lists, errors, masks, no leaks.
 */
import * as tf from '@tensorflow/tfjs';
import { DropnormValueError, RMSNorm, layers, ops } from 'tfjs-dropnorm';
import { leakedTensors, maxAbsDiff } from './helpers';
import { relativeError, rmsNorm64 } from './norms_reference';

const apply = (layer: tf.layers.Layer, x: tf.Tensor, training = false) =>
  layer.apply(x, { training }) as tf.Tensor;

/** Keras 3's `ops.rms_normalization` written with tf ops (autodiff): x·rsqrt(mean(x²)+ε)·scale. */
function compositeRmsNorm(
  x: tf.Tensor,
  scale: tf.Tensor,
  axes: number[],
  epsilon: number,
): tf.Tensor {
  const shape = x.shape.map((d, a) => (axes.includes(a) ? d : 1));
  const r = tf.rsqrt(tf.add(tf.mean(tf.square(x), axes, true), epsilon));
  return tf.mul(tf.mul(x, r), tf.reshape(scale, shape));
}

describe("RMSNorm: Keras 3's published expectations", () => {
  // keras/src/layers/normalization/rms_normalization_test.py, test_output.
  it('arange(10) as [1, 10] with the default axis and epsilon', () => {
    const y = apply(layers.rmsNorm(), tf.reshape(tf.range(0, 10), [1, 10]));
    const expected = [
      0.0, 0.18731716, 0.37463433, 0.5619515, 0.74926865, 0.9365858, 1.123903, 1.3112202, 1.4985373,
      1.6858544,
    ];
    expect(maxAbsDiff(y, tf.tensor([expected]))).toBeLessThan(1e-6);
  });

  // rms_normalization_test.py, test_unsorted_negative_axis.
  it('axis [-1, -2] on [2, 4, 8]: scale of shape [4, 8], output shape kept', () => {
    const layer = layers.rmsNorm({ axis: [-1, -2] });
    const y = apply(layer, tf.ones([2, 4, 8]));
    expect(layer.weights.map((w) => [w.originalName, w.shape])).toEqual([
      [`${layer.name}/scale`, [4, 8]],
    ]);
    expect(y.shape).toEqual([2, 4, 8]);
    // ones: mean(x²) = 1, so y = 1/√(1 + 1e-6).
    expect(maxAbsDiff(y, tf.fill([2, 4, 8], 1 / Math.sqrt(1 + 1e-6)))).toBeLessThan(1e-7);
  });

  // rms_normalization_test.py, test_correctness: N(5, 10) of shape [1000, 2, 2, 2], axis [-1, -2].
  it('axis [-1, -2] on N(5, 10) samples equals the formula', () => {
    const x = tf.randomNormal([1000, 2, 2, 2], 5, 10, 'float32', 1);
    const layer = layers.rmsNorm({ axis: [-1, -2] });
    const y = apply(layer, x);
    const ref = rmsNorm64(x.dataSync(), [1000, 2, 2, 2], [2, 3], null, 1e-6);
    expect(relativeError(y.dataSync(), ref.y)).toBeLessThan(1e-6);
  });
});

const CASES: Array<[string, number[], number | number[], number[]]> = [
  ['rank 2, axis -1', [6, 10], -1, [1]],
  ['rank 3, axis -1 (per position)', [3, 5, 8], -1, [2]],
  ['rank 3, axis 1 (not trailing)', [3, 5, 8], 1, [1]],
  ['rank 4, axis [-2, -1]', [2, 3, 4, 5], [-2, -1], [2, 3]],
  ['rank 4, axis [3, 1] (unsorted, not contiguous)', [2, 3, 4, 5], [3, 1], [1, 3]],
  ['rank 5, axis [1, 2, 3, 4]', [2, 2, 3, 2, 3], [1, 2, 3, 4], [1, 2, 3, 4]],
];

describe('RMSNorm against float64 and the composite', () => {
  describe.each(CASES)('%s', (_, shape, axis, axes) => {
    const x = tf.randomNormal(shape, 0.3, 2, 'float32', 11);
    const dy = tf.randomNormal(shape, 0, 1, 'float32', 12);
    const scaleShape = axes.map((a) => shape[a]);
    const scale = tf.randomNormal(scaleShape, 1, 0.5, 'float32', 13);
    const ref = rmsNorm64(x.dataSync(), shape, axes, scale.dataSync(), 1e-6, dy.dataSync());

    it('the layer equals float64 (training and inference alike)', () => {
      const layer = layers.rmsNorm({ axis });
      layer.build(shape);
      layer.setWeights([scale]);
      const y = apply(layer, x, true);
      expect(relativeError(y.dataSync(), ref.y)).toBeLessThan(1e-6);
      expect(maxAbsDiff(y, apply(layer, x, false))).toBe(0);
    });

    it('gradients to x and scale equal tf.grad of the composite and float64', () => {
      const f = (fn: (x: tf.Tensor, s: tf.Tensor) => tf.Tensor) =>
        tf.grads((xi: tf.Tensor, s: tf.Tensor) => tf.sum(tf.mul(fn(xi, s), dy)))([x, scale]);
      const fused = f((xi, s) => ops.rmsNorm(xi, s, axes, 1e-6));
      const composite = f((xi, s) => compositeRmsNorm(xi, s, axes, 1e-6));
      const f64 = [ref.dx, ref.dScale];
      for (let k = 0; k < 2; k++) {
        expect(relativeError(fused[k].dataSync(), composite[k].dataSync())).toBeLessThan(1e-5);
        expect(relativeError(fused[k].dataSync(), f64[k])).toBeLessThan(1e-5);
      }
      tf.dispose([...fused, ...composite]);
    });
  });

  it('far from zero (300 ± 0.1): dx equals float64', () => {
    const shape = [4, 16];
    const x = tf.randomNormal(shape, 300, 0.1, 'float32', 21);
    const dy = tf.randomNormal(shape, 0, 1, 'float32', 22);
    const dx = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(ops.rmsNorm(xi, null, [1], 1e-6), dy)))(x);
    const ref = rmsNorm64(x.dataSync(), shape, [1], null, 1e-6, dy.dataSync());
    expect(relativeError(dx.dataSync(), ref.dx)).toBeLessThan(1e-4);
  });
});

describe('RMSNorm: errors, masks, leaks', () => {
  it('rejects a bad axis, the batch axis, bad epsilon, unknown keys', () => {
    for (const bad of [1.5, [], ['1'], 'last']) {
      expect(() => layers.rmsNorm({ name: 'r', axis: bad as never })).toThrow(
        /^RMSNorm 'r': expected axis to be an integer or a non-empty list of integers, received: axis=/,
      );
    }
    expect(() => layers.rmsNorm({ name: 'r', axis: [0, 1] })).toThrow(
      "RMSNorm 'r': expected axis not to include the batch axis 0 (the statistics are per sample), received: axis=[0,1]. Use -1 for the features axis.",
    );
    expect(() =>
      layers.rmsNorm({ name: 'r', axis: [1, -2] }).apply(tf.input({ shape: [3, 4] })),
    ).toThrow(
      /^RMSNorm 'r': expected axis to be distinct axes in \[-2, 3\) and not the batch axis, for an input of rank 3/,
    );
    expect(() => layers.rmsNorm({ axis: 3 }).apply(tf.input({ shape: [3, 4] }))).toThrow(
      DropnormValueError,
    );
    expect(() => layers.rmsNorm({ axis: -3 }).apply(tf.input({ shape: [3, 4] }))).toThrow(
      /not the batch axis/,
    );
    expect(() => layers.rmsNorm({ epsilon: -1 })).toThrow(
      /expected epsilon to be a finite number > 0/,
    );
    expect(() => layers.rmsNorm({ name: 'r', epsilion: 1e-5 } as never)).toThrow(
      /^RMSNorm 'r': unknown argument 'epsilion' \(did you mean 'epsilon'\?\)/,
    );
    expect(() =>
      layers.rmsNorm({ name: 'r' }).apply(tf.input({ shape: [null as unknown as number] })),
    ).toThrow(/expected input shape\[1\] .* to be defined/);
  });

  it('passes a mask through; per-position statistics leave unpadded steps unchanged', () => {
    const x = tf.concat([tf.randomNormal([2, 3, 4], 0, 1, 'float32', 31), tf.zeros([2, 2, 4])], 1);
    const mask = tf.any(tf.notEqual(x, 0), -1);
    const layer = layers.rmsNorm();
    expect(apply(layer, x).shape).toEqual([2, 5, 4]);
    expect(layer.computeMask(x, mask)).toBe(mask);
    const head = apply(layers.rmsNorm(), tf.slice(x, [0, 0, 0], [2, 3, 4]));
    expect(maxAbsDiff(tf.slice(apply(layer, x), [0, 0, 0], [2, 3, 4]), head)).toBe(0);
    // The model runs with a mask-consuming layer after it.
    const input = tf.input({ shape: [5, 4] });
    const m = tf.layers.masking().apply(input) as tf.SymbolicTensor;
    const out = tf.layers.lstm({ units: 2 }).apply(layers.rmsNorm().apply(m)) as tf.SymbolicTensor;
    expect(() =>
      (tf.model({ inputs: input, outputs: out }).predict(x) as tf.Tensor).dispose(),
    ).not.toThrow();
  });

  it('leaks no tensor in forward and gradient loops', async () => {
    const layer = layers.rmsNorm({ axis: [1, 2] });
    const x = tf.randomNormal([2, 4, 3], 0, 1, 'float32', 41);
    apply(layer, x).dispose();
    const leaked = await leakedTensors(() => {
      for (let i = 0; i < 3; i++) {
        apply(layer, x, true).dispose();
        const { value, grads } = tf.variableGrads(() => tf.sum(apply(layer, x, true)) as tf.Scalar);
        tf.dispose([value, ...Object.values(grads)]);
      }
    });
    expect(leaked).toBe(0);
  });

  it('class RMSNorm, serialized as RMSNormalization with Keras 3 defaults', () => {
    const layer = layers.rmsNorm();
    expect(layer).toBeInstanceOf(RMSNorm);
    expect(RMSNorm.className).toBe('RMSNormalization');
    expect(layer.getConfig()).toMatchObject({ axis: -1, epsilon: 1e-6 });
    expect(layers.rmsNorm({ axis: [-2, -1] }).getConfig()).toMatchObject({ axis: [-2, -1] });
  });
});
