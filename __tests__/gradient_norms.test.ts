import * as tf from '@tensorflow/tfjs';
import { firstLastRatio, gradientNorms, layers as dnLayers } from 'tfjs-dropnorm';
import { leakedTensors } from './helpers';

// The pack's BatchNorm is a tf.customGrad op whose forward saves intermediates for its backward;
// tfjs's IS_TEST kernel leak check counts those as leaks while the tape records. They are freed
// by the backward; leaks are checked here with tf.memory() instead.
tf.env().set('IS_TEST', false);

function norm(values: ArrayLike<number>): number {
  return Math.sqrt(Array.from(values).reduce((s, v) => s + v * v, 0));
}

describe('gradientNorms', () => {
  it('matches the closed form of a linear layer under MSE', () => {
    // ŷ = xW + b, L = mean((ŷ − y)²) over n = 2 samples, 1 output:
    // ∂L/∂W = (2/n)·Xᵀ(ŷ − y), ∂L/∂b = (2/n)·Σ(ŷ − y).
    const model = tf.sequential({
      layers: [tf.layers.dense({ units: 1, inputShape: [2] })],
    });
    model.setWeights([tf.tensor2d([[0.5], [-1]]), tf.tensor1d([0.25])]);
    const x = tf.tensor2d([
      [1, 2],
      [3, -1],
    ]);
    const y = tf.tensor2d([[1], [0]]);
    const X = [
      [1, 2],
      [3, -1],
    ];
    const residual = X.map(([a, b], i) => a * 0.5 + b * -1 + 0.25 - [1, 0][i]); // [-2.25, 4.75]
    const dW = [0, 1].map((j) => (2 / 2) * residual.reduce((s, r, i) => s + X[i][j] * r, 0));
    const db = (2 / 2) * residual.reduce((s, r) => s + r, 0);
    const [layer] = gradientNorms(model, x, y, { loss: 'meanSquaredError' });
    expect(layer.kernel).toBeCloseTo(norm(dW), 5);
    expect(layer.bias).toBeCloseTo(Math.abs(db), 5);
    expect(layer.total).toBeCloseTo(Math.hypot(norm(dW), db), 5);
    expect(layer.className).toBe('Dense');
  });

  it('equals per-layer norms of tf.variableGrads, ordered input → output', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ units: 4, inputShape: [3], activation: 'tanh', name: 'first' }),
        tf.layers.dense({ units: 3, activation: 'sigmoid', name: 'middle' }),
        tf.layers.dense({ units: 2, activation: 'softmax', name: 'last' }),
      ],
    });
    model.compile({ optimizer: 'sgd', loss: 'categoricalCrossentropy' });
    const x = tf.randomNormal([5, 3], 0, 1, 'float32', 1);
    const y = tf.oneHot(tf.tensor1d([0, 1, 1, 0, 1], 'int32'), 2);
    const { grads, value } = tf.variableGrads(
      () =>
        tf.mean(tf.metrics.categoricalCrossentropy(y, model.apply(x) as tf.Tensor)) as tf.Scalar,
      model.trainableWeights.map((w) => w.read() as tf.Variable),
    );
    value.dispose();
    const expected = model.trainableWeights.map((w) =>
      norm(grads[(w.read() as tf.Variable).name].dataSync()),
    );
    const norms = gradientNorms(model, x, y); // the compiled loss
    expect(norms.map((n) => n.layer)).toEqual(['first', 'middle', 'last']);
    norms.forEach((n, i) => {
      expect(n.kernel).toBeCloseTo(expected[2 * i], 6);
      expect(n.bias).toBeCloseTo(expected[2 * i + 1], 6);
    });
    expect(firstLastRatio(norms)).toBeCloseTo(expected[0] / expected[4], 5);
  });

  it('leaves weights and BatchNorm moving statistics unchanged, and leaks nothing', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ units: 4, inputShape: [3] }),
        dnLayers.batchNorm({ momentum: 0 }),
        tf.layers.activation({ activation: 'sigmoid' }),
        tf.layers.dense({ units: 1 }),
      ],
    });
    const x = tf.randomNormal([8, 3], 2, 3, 'float32', 2);
    const y = tf.randomNormal([8, 1], 0, 1, 'float32', 3);
    const before = model.getWeights().map((w) => Array.from(w.dataSync()));
    const leaked = await leakedTensors(() =>
      gradientNorms(model, x, y, { loss: 'meanSquaredError' }),
    );
    expect(leaked).toBe(0);
    expect(model.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(before);
  });

  it('uses a training-mode forward by default (BatchNorm batch statistics)', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ units: 2, inputShape: [2] }),
        dnLayers.batchNorm(),
        tf.layers.dense({ units: 1 }),
      ],
    });
    const x = tf.tensor2d([
      [10, 0],
      [12, 1],
      [14, -1],
    ]);
    const y = tf.tensor2d([[1], [2], [3]]);
    const trainingMode = gradientNorms(model, x, y, { loss: 'meanSquaredError' });
    const inference = gradientNorms(model, x, y, { loss: 'meanSquaredError', training: false });
    // Batch-normalized activations have zero mean: the inputs' large offset (10–14) does not
    // reach the last layer in training mode, but does with the moving statistics (0, 1).
    expect(trainingMode[2].kernel).not.toBeCloseTo(inference[2].kernel as number, 2);
    expect(trainingMode.map((n) => n.className)).toEqual(['Dense', 'DropnormBatchNorm', 'Dense']);
    expect(trainingMode[1].weights).toHaveProperty('gamma');
    expect(trainingMode[1].kernel).toBeNull();
  });

  it('reports huge gradients without overflowing to Infinity', () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1] })] });
    model.setWeights([tf.tensor2d([[1e18]]), tf.tensor1d([0])]);
    const [layer] = gradientNorms(model, tf.tensor2d([[1e18]]), tf.tensor2d([[0]]), {
      loss: 'meanSquaredError',
    });
    // ∂L/∂w = 2·(w·x)·x = 2e54 overflows float32 itself; the bias gradient 2e36 does not, and
    // √(b²) must not overflow on the way (b² = 4e72 > float32 max).
    expect(layer.bias).toBeCloseTo(2e36, -31);
  });

  it('names the fix when no loss is known', () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1] })] });
    expect(() => gradientNorms(model, tf.ones([1, 1]), tf.ones([1, 1]))).toThrow(
      /gradientNorms: expected loss to be given when the model is not compiled/,
    );
    expect(() =>
      gradientNorms(model, tf.ones([1, 1]), tf.ones([1, 1]), { loss: 'hinge' as never }),
    ).toThrow(/received: loss="hinge"/);
  });
});
