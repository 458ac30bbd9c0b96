import * as tf from '@tensorflow/tfjs';
import { activationStats, GradientFlow, gradientNorms, layers as dnLayers } from 'tfjs-dropnorm';

function smallModel(): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({ units: 6, inputShape: [4], activation: 'relu', name: 'r' }),
      dnLayers.batchNorm({ name: 'bn' }),
      tf.layers.dense({ units: 5, activation: 'tanh', name: 't' }),
      tf.layers.dense({ units: 2, activation: 'sigmoid', name: 's' }),
    ],
  });
}

describe('GradientFlow', () => {
  const x = tf.randomNormal([12, 4], 0, 1, 'float32', 11);
  const y = tf.randomUniform([12, 2], 0, 1, 'float32', 12);

  it('records one entry per configured epoch interval, and leaks no tensor', async () => {
    const model = smallModel();
    model.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
    const flow = new GradientFlow({ x, y, every: 2 });
    const before = tf.memory().numTensors;
    await model.fit(x, y, { epochs: 5, batchSize: 4, verbose: 0, callbacks: [flow] });
    const optimizerState = 0; // SGD keeps no slot variables
    expect(tf.memory().numTensors - before).toBe(optimizerState);
    expect(flow.history.map((r) => r.epoch)).toEqual([2, 4]);
    expect(flow.history.map((r) => r.step)).toEqual([6, 12]); // 3 batches per epoch
    expect(flow.history[0].gradients.map((g) => g.layer)).toEqual(['r', 'bn', 't', 's']);
    expect(flow.history[0].activations.map((a) => [a.layer, a.activation])).toEqual([
      ['r', 'relu'],
      ['t', 'tanh'],
      ['s', 'sigmoid'],
    ]);
  });

  it('records every N batches, plus once at train begin when asked', async () => {
    const model = smallModel();
    model.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
    const seen: number[] = [];
    const flow = new GradientFlow({
      x,
      y,
      every: 4,
      unit: 'batch',
      atTrainBegin: true,
      activations: false,
      onRecord: (r) => seen.push(r.step),
    });
    await model.fit(x, y, { epochs: 3, batchSize: 4, verbose: 0, callbacks: [flow] }); // 9 steps
    expect(flow.history.map((r) => r.step)).toEqual([0, 4, 8]);
    expect(seen).toEqual([0, 4, 8]);
    expect(flow.history[1].activations).toEqual([]);
  });

  it('its gradient record equals gradientNorms on the same weights', async () => {
    const model = smallModel();
    model.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
    const flow = new GradientFlow({ x, y });
    await model.fit(x, y, { epochs: 1, batchSize: 12, verbose: 0, callbacks: [flow] });
    const now = gradientNorms(model, x, y);
    flow.history[0].gradients.forEach((g, i) => expect(g.total).toBeCloseTo(now[i].total, 6));
  });

  it('rejects a bad interval', () => {
    expect(() => new GradientFlow({ x, y, every: 0 })).toThrow(
      /GradientFlow: expected every to be an integer ≥ 1, received: every=0/,
    );
  });
});

describe('activationStats', () => {
  it('counts dead ReLUs (0 for every sample) and saturated sigmoid/tanh outputs (|f′| < 0.01)', () => {
    const input = tf.input({ shape: [2] });
    const relu = tf.layers.dense({ units: 3, activation: 'relu', name: 'relu' }).apply(input);
    const sig = tf.layers.dense({ units: 2, activation: 'sigmoid', name: 'sig' }).apply(input);
    const tanh = tf.layers.dense({ units: 2, activation: 'tanh', name: 'tanh' }).apply(input);
    const model = tf.model({
      inputs: input,
      outputs: [relu, sig, tanh] as tf.SymbolicTensor[],
    });
    // Inputs (1, 0) and (0, 1); kernels chosen so that:
    // relu unit 0 = max(0, −x0 − x1) = 0 for both → dead; unit 1 = x0 → alive on sample 0;
    // unit 2 = max(0, −x0 + 0·x1) = 0 for both → dead. Dead fraction = 2/3.
    model.getLayer('relu').setWeights([tf.tensor2d([-1, 1, -1, -1, 0, 0], [2, 3]), tf.zeros([3])]);
    // sigmoid pre-activations: unit 0 = 10·x0 (σ′(10) ≈ 4.5e-5 saturated, σ′(0) = 0.25 not),
    // unit 1 = 1·x1 (σ′(1) ≈ 0.197, σ′(0) = 0.25). Saturated: 1 of 4 outputs.
    model.getLayer('sig').setWeights([tf.tensor2d([10, 0, 0, 1], [2, 2]), tf.zeros([2])]);
    // tanh: unit 0 = 3·x0 (1 − tanh²(3) ≈ 0.0099 < 0.01 saturated), unit 1 = 2.5·x1
    // (1 − tanh²(2.5) ≈ 0.0266, not). Saturated: 1 of 4.
    model.getLayer('tanh').setWeights([tf.tensor2d([3, 0, 0, 2.5], [2, 2]), tf.zeros([2])]);
    const stats = activationStats(model, tf.tensor2d([1, 0, 0, 1], [2, 2]));
    expect(stats.map((s) => [s.layer, s.units])).toEqual([
      ['relu', 3],
      ['sig', 2],
      ['tanh', 2],
    ]);
    expect(stats[0].dead).toBeCloseTo(2 / 3, 6);
    expect(stats[0].saturated).toBeNull();
    expect(stats[1].saturated).toBeCloseTo(1 / 4, 6);
    expect(stats[2].saturated).toBeCloseTo(1 / 4, 6);
    expect(stats[2].dead).toBeNull();
  });
});

describe('activationStats: x is checked against the model inputs', () => {
  it('a wrong feature size or input count is a clear error, and leaks nothing', async () => {
    const model = tf.sequential({
      layers: [tf.layers.dense({ units: 3, inputShape: [4], activation: 'relu' })],
    });
    const x = tf.zeros([2, 5]);
    const before = tf.memory().numTensors;
    expect(() => activationStats(model, x)).toThrow(
      /^activationStats: expected x shape to be \[\*, 4\] \(the model's input, batch axis first\), received: x shape=\[2,5\]\./,
    );
    expect(() => activationStats(model, [x, x])).toThrow(
      /^activationStats: expected x to be one tensor/,
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});
