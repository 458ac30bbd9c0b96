import * as tf from '@tensorflow/tfjs';
import { firstLastRatio, GradientFlow, gradientNorms, layers as dnLayers } from 'tfjs-dropnorm';
import { leakedTensors } from './helpers';

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

/**
 * A y that does not fit the model's output (issue 20, item 5): before, a batch mismatch leaked
 * ~40 tensors behind a raw broadcasting error, and a [16, 3] target for a [16, 1] output was
 * silently broadcast into a [16, 3] loss. Now y is checked against the outputs first, as
 * model.fit does, with the pack's error, and nothing leaks on any failure.
 */
describe('gradientNorms / GradientFlow: the probe batch is checked like model.fit checks it', () => {
  function model(): tf.Sequential {
    const m = tf.sequential({
      layers: [
        tf.layers.dense({ units: 4, inputShape: [3], activation: 'relu' }),
        dnLayers.batchNorm(),
        dnLayers.dropout({ rate: 0.2, seed: 1 }),
        tf.layers.dense({ units: 1 }),
      ],
    });
    m.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
    return m;
  }
  const x = tf.randomNormal([16, 3], 0, 1, 'float32', 1);

  it.each([
    [
      'a [16, 3] target for a [16, 1] output',
      [16, 3],
      /expected y shape to be \[\*, 1\] \(the model's output, batch axis first\), received: y shape=\[16,3\]\. The loss would broadcast/,
    ],
    [
      'a batch of 8 targets for 16 inputs',
      [8, 1],
      /expected batch sizes to be equal \(one sample of y per sample of x\), received: batch sizes=\{"x":16,"y":8\}/,
    ],
    ['a rank-3 target', [16, 1, 1], /expected y shape to be \[\*, 1\]/],
  ])('%s is a clear error, and leaks nothing', async (_what, shape, message) => {
    const m = model();
    const y = tf.zeros(shape as number[]);
    const before = m.getWeights().map((w) => w.dataSync().slice());
    let error: unknown;
    const leaked = await leakedTensors(() => {
      try {
        gradientNorms(m, x, y);
      } catch (e) {
        error = e;
      }
    });
    expect((error as Error).name).toBe('ValueError');
    expect((error as Error).message).toMatch(/^gradientNorms: /);
    expect((error as Error).message).toMatch(message);
    expect(leaked).toBe(0);
    // model.fit refuses the same y (its own, less specific, message).
    await expect(m.fit(x, y, { epochs: 1, verbose: 0 })).rejects.toThrow();
    expect(m.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(
      before.map((w) => Array.from(w)),
    );
  });

  it('x that does not fit the inputs, or a multi-output model, is a clear error', () => {
    const m = model();
    const y = tf.zeros([16, 1]);
    expect(() => gradientNorms(m, tf.zeros([16, 4]), y)).toThrow(
      /^gradientNorms: expected x shape to be \[\*, 3\] \(the model's input, batch axis first\), received: x shape=\[16,4\]/,
    );
    expect(() => gradientNorms(m, [x, x], y)).toThrow(
      /^gradientNorms: expected x to be one tensor \(one per model input: \[\*, 3\]\), received: x="2 tensor\(s\)"/,
    );
    const input = tf.input({ shape: [3] });
    const two = tf.model({
      inputs: input,
      outputs: [
        tf.layers.dense({ units: 1 }).apply(input) as tf.SymbolicTensor,
        tf.layers.dense({ units: 2 }).apply(input) as tf.SymbolicTensor,
      ],
    });
    expect(() => gradientNorms(two, x, y, { loss: 'meanSquaredError' })).toThrow(
      /^gradientNorms: expected model outputs to be 1 .*received: model outputs=2/,
    );
  });

  it('a rank-1 target counts as [N, 1] (as in model.fit), not broadcast to [N, N]', () => {
    const m = model();
    const y1 = tf.randomNormal([16], 0, 1, 'float32', 2);
    const norms1 = gradientNorms(m, x, y1, { training: false });
    const norms2 = gradientNorms(m, x, tf.reshape(y1, [16, 1]), { training: false });
    expect(norms1.map((n) => n.total)).toEqual(norms2.map((n) => n.total));
  });

  it('a loss that throws leaks nothing and leaves the model as it was', async () => {
    const m = model();
    const stateBefore = m.getWeights().map((w) => Array.from(w.dataSync()));
    const y = tf.zeros([16, 1]);
    const leaked = await leakedTensors(() => {
      expect(() =>
        gradientNorms(m, x, y, {
          loss: () => {
            throw new Error('loss failed');
          },
        }),
      ).toThrow('loss failed');
    });
    expect(leaked).toBe(0);
    expect(m.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(stateBefore);
  });

  it('GradientFlow refuses a mismatched probe when fit starts, before any epoch', async () => {
    const m = model();
    const flow = new GradientFlow({ x, y: tf.zeros([16, 3]) });
    let epochs = 0;
    await expect(
      m.fit(x, tf.zeros([16, 1]), {
        epochs: 2,
        verbose: 0,
        callbacks: [flow, new tf.CustomCallback({ onEpochEnd: async () => void epochs++ })],
      }),
    ).rejects.toThrow(/^GradientFlow: expected y shape to be \[\*, 1\]/);
    expect(epochs).toBe(0);
    expect(flow.history).toEqual([]);
    // The model still trains afterwards (fit is not left half-running).
    await m.fit(x, tf.zeros([16, 1]), { epochs: 1, verbose: 0 });
  });
});
