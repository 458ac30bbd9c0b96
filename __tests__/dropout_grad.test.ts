// The gradient through each layer (tf.grad of sum(layer(x))) equals the layer's multiplier,
// mask × scale, for the mask drawn from the same seed by the pure op.
import * as tf from '@tensorflow/tfjs';
import { layers, ops } from 'tfjs-dropnorm';
import { maxAbsDiff } from './helpers';

const SEED = 2024;

/** d/dx Σ layer(x) in training mode; the layer's first call, so it uses SEED itself. */
function gradOf(layer: tf.layers.Layer, x: tf.Tensor): tf.Tensor {
  return tf.grad((input: tf.Tensor) => tf.sum(layer.apply(input, { training: true }) as tf.Tensor))(
    x,
  );
}

/** Expected multiplier keepMask(noiseShape)/(1−p), broadcast to `shape`. */
function scaledMask(shape: number[], noiseShape: number[], rate: number): tf.Tensor {
  return tf.tidy(() =>
    tf.broadcastTo(tf.div(ops.keepMask(noiseShape, rate, SEED), 1 - rate), shape),
  );
}

function expectGrad(g: tf.Tensor, expected: tf.Tensor): void {
  expect(maxAbsDiff(g, expected)).toBeLessThan(1e-6);
  // Not trivially all ones: something was dropped or scaled.
  expect(tf.tidy(() => tf.min(expected).dataSync()[0])).toBeLessThan(0.5);
  tf.dispose([g, expected]);
}

const x4 = tf.randomNormal([4, 6, 6, 3], 0, 1, 'float32', 1);
const x2 = tf.randomNormal([16, 24], 0, 1, 'float32', 2);
afterAll(() => tf.dispose([x4, x2]));

test('dropout (inverted): mask / (1−p)', () => {
  expectGrad(
    gradOf(layers.dropout({ rate: 0.4, seed: SEED }), x2),
    scaledMask(x2.shape, x2.shape, 0.4),
  );
});

test('dropout (classic): the unscaled mask', () => {
  const g = gradOf(layers.dropout({ rate: 0.4, seed: SEED, mode: 'classic' }), x2);
  expectGrad(g, ops.keepMask(x2.shape, 0.4, SEED));
});

test('dropout with noiseShape: the broadcast mask', () => {
  const g = gradOf(layers.dropout({ rate: 0.5, seed: SEED, noiseShape: [null, 1] }), x2);
  expectGrad(g, scaledMask(x2.shape, [16, 1], 0.5));
});

test.each([
  [
    'spatialDropout1d',
    () => layers.spatialDropout1d({ rate: 0.5, seed: SEED }),
    [4, 6, 3],
    [4, 1, 3],
  ],
  [
    'spatialDropout1d channelsFirst',
    () => layers.spatialDropout1d({ rate: 0.5, seed: SEED, dataFormat: 'channelsFirst' }),
    [4, 3, 6],
    [4, 3, 1],
  ],
  [
    'spatialDropout2d',
    () => layers.spatialDropout2d({ rate: 0.5, seed: SEED }),
    [4, 6, 6, 3],
    [4, 1, 1, 3],
  ],
  [
    'spatialDropout3d channelsFirst',
    () => layers.spatialDropout3d({ rate: 0.5, seed: SEED, dataFormat: 'channelsFirst' }),
    [4, 3, 2, 2, 2],
    [4, 3, 1, 1, 1],
  ],
  ['dropPath', () => layers.dropPath({ rate: 0.5, seed: SEED }), [16, 6, 3], [16, 1, 1]],
] as const)('%s: the broadcast mask / (1−p)', (_n, make, shape, noiseShape) => {
  const x = tf.randomNormal(shape as unknown as number[], 0, 1, 'float32', 3);
  expectGrad(gradOf(make(), x), scaledMask(x.shape, noiseShape as unknown as number[], 0.5));
  x.dispose();
});

test('gaussianDropout: the N(1, p/(1−p)) multiplier', () => {
  const rate = 0.3;
  const g = gradOf(layers.gaussianDropout({ rate, seed: SEED }), x2);
  const eps = tf.randomNormal(x2.shape, 1, Math.sqrt(rate / (1 - rate)), 'float32', SEED);
  expectGrad(g, eps);
});

test('alphaDropout: a·d', () => {
  const rate = 0.3;
  const { a } = ops.alphaDropoutParams(rate);
  const g = gradOf(layers.alphaDropout({ rate, seed: SEED }), x2);
  expectGrad(g, tf.mul(ops.keepMask(x2.shape, rate, SEED), a));
});

test.each(['channelsLast', 'channelsFirst'] as const)(
  'dropBlock2d %s: M · count(M)/count_ones(M)',
  (dataFormat) => {
    const x = dataFormat === 'channelsLast' ? x4 : tf.transpose(x4, [0, 3, 1, 2]);
    const g = gradOf(layers.dropBlock2d({ rate: 0.3, blockSize: 3, seed: SEED, dataFormat }), x);
    const expected = tf.tidy(() => {
      const mask = ops.dropBlockMask(x.shape, 0.3, 3, dataFormat, SEED);
      return tf.mul(mask, mask.size / tf.sum(mask).dataSync()[0]);
    });
    expectGrad(g, expected);
    if (x !== x4) x.dispose();
  },
);

test('dropConnectDense: dy/dx = (W ⊙ M / (1−p))ᵀ summed over units; dW = xᵀ·1 ⊙ M/(1−p)', () => {
  const rate = 0.5;
  const layer = layers.dropConnectDense({ units: 5, rate, seed: SEED });
  layer.build([null, 24]);
  const [kernel] = layer.getWeights();
  const g = gradOf(layer, x2);
  const dropped = ops.dropConnect(kernel, rate, SEED);
  const expected = tf.tidy(() => tf.broadcastTo(tf.reshape(tf.sum(dropped, 1), [1, 24]), x2.shape));
  expect(maxAbsDiff(g, expected)).toBeLessThan(1e-5);
  // The gradient with respect to the kernel, through an optimizer-visible path: same mask.
  layer.resetSeedStream();
  const { grads } = tf.variableGrads(
    () => tf.sum(layer.apply(x2, { training: true }) as tf.Tensor) as tf.Scalar,
  );
  const kernelGrad = Object.entries(grads).find(([name]) => name.includes('kernel'))![1];
  const expectedKernelGrad = tf.tidy(() =>
    tf.mul(
      tf.matMul(tf.transpose(x2), tf.ones([16, 5])),
      tf.div(ops.keepMask(kernel.shape, rate, SEED), 1 - rate),
    ),
  );
  expect(maxAbsDiff(kernelGrad, expectedKernelGrad)).toBeLessThan(1e-4);
  tf.dispose([kernel, g, dropped, expected, expectedKernelGrad]);
  tf.dispose(grads);
});
