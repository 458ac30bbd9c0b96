// mcPredict: the pack's dropout layers active, every other layer (BatchNorm above all) in inference.
import * as tf from '@tensorflow/tfjs';
import { BatchNorm, Dropout, layers, mcPredict, mixSeed } from 'tfjs-dropnorm';
import { leakedTensors, maxAbsDiff } from './helpers';

function bnModel(): { model: tf.Sequential; bn: BatchNorm; drop: Dropout } {
  const bn = layers.batchNorm({ momentum: 0.5 });
  const drop = layers.dropout({ rate: 0.5, seed: 3 });
  const model = tf.sequential({
    layers: [
      tf.layers.dense({
        units: 16,
        inputShape: [8],
        kernelInitializer: tf.initializers.glorotNormal({ seed: 1 }),
      }),
      bn,
      tf.layers.activation({ activation: 'relu' }),
      drop,
      tf.layers.dense({ units: 2, kernelInitializer: tf.initializers.glorotNormal({ seed: 2 }) }),
    ],
  });
  return { model, bn, drop };
}

const x = tf.randomNormal([10, 8], 0, 1, 'float32', 4);
afterAll(() => x.dispose());

test('variance > 0 where dropout is active, BatchNorm moving statistics unchanged', async () => {
  const { model, bn } = bnModel();
  model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
  const y = tf.randomNormal([10, 2], 0, 1, 'float32', 5);
  await model.fit(x, y, { epochs: 2, batchSize: 5, verbose: 0 });
  const before = bn.getWeights().map((w) => w.dataSync().slice());
  const { mean, variance } = mcPredict(model, x, { samples: 20, seed: 1 });
  expect(mean.shape).toEqual([10, 2]);
  expect(variance.shape).toEqual([10, 2]);
  expect(tf.tidy(() => tf.min(variance).dataSync()[0])).toBeGreaterThan(0);
  const after = bn.getWeights().map((w) => w.dataSync());
  after.forEach((w, i) => expect(Array.from(w)).toEqual(Array.from(before[i])));
  // The moving statistics are not the initial ones: fit did move them, predict did not.
  expect(Array.from(before[2]).some((v) => v !== 0)).toBe(true);
  tf.dispose([mean, variance, y]);
  model.dispose();
});

test('equal seeds give equal results; other seeds other results; the layer is restored', () => {
  const { model, drop } = bnModel();
  const a = mcPredict(model, x, { samples: 5, seed: 42 });
  const b = mcPredict(model, x, { samples: 5, seed: 42 });
  const c = mcPredict(model, x, { samples: 5, seed: 43 });
  expect(maxAbsDiff(a.mean, b.mean)).toBe(0);
  expect(maxAbsDiff(a.variance, b.variance)).toBe(0);
  expect(maxAbsDiff(a.mean, c.mean)).toBeGreaterThan(0);
  expect(drop.mcActive).toBe(false);
  // The layer's own sequence is untouched: its next training call is call 0 of seed 3.
  const ones = tf.ones([4, 16]);
  const fresh = layers.dropout({ rate: 0.5, seed: 3 });
  const y1 = drop.apply(ones, { training: true }) as tf.Tensor;
  const y2 = fresh.apply(ones, { training: true }) as tf.Tensor;
  expect(maxAbsDiff(y1, y2)).toBe(0);
  tf.dispose([a.mean, a.variance, b.mean, b.variance, c.mean, c.variance, ones, y1, y2]);
  model.dispose();
});

test('mean and variance are the moments of the T passes (checked against stacked passes)', () => {
  const seed = 9;
  const T = 12;
  const build = (layerSeed: number) =>
    tf.sequential({
      layers: [
        layers.dropout({ rate: 0.4, seed: layerSeed, inputShape: [6] }),
        tf.layers.dense({ units: 3, kernelInitializer: 'ones', biasInitializer: 'ones' }),
      ],
    });
  const model = build(123);
  const { mean, variance } = mcPredict(model, x.slice([0, 0], [10, 6]), { samples: T, seed });
  // mcPredict gives the i-th pack layer the stream of mixSeed(seed, i): replay it by hand.
  const replay = build(mixSeed(seed, 0));
  const stacked = tf.tidy(() =>
    tf.stack(
      Array.from(
        { length: T },
        () => replay.apply(x.slice([0, 0], [10, 6]), { training: true }) as tf.Tensor,
      ),
    ),
  );
  const m = tf.moments(stacked, 0);
  expect(maxAbsDiff(mean, m.mean)).toBeLessThan(1e-5);
  expect(maxAbsDiff(variance, m.variance)).toBeLessThan(1e-4);
  expect(tf.tidy(() => tf.min(variance).dataSync()[0])).toBeGreaterThan(0);
  tf.dispose([mean, variance, stacked, m.mean, m.variance]);
  model.dispose();
  replay.dispose();
});

test('MC mean of a linear model estimates its deterministic prediction', () => {
  const model = tf.sequential({
    layers: [
      layers.dropout({ rate: 0.3, inputShape: [8] }),
      tf.layers.dense({ units: 1, kernelInitializer: 'ones' }),
    ],
  });
  const T = 400;
  const { mean, variance } = mcPredict(model, x, { samples: T, seed: 5 });
  const plain = model.predict(x) as tf.Tensor;
  // Var of one pass: p/(1−p)·Σ x²; 5 standard errors of the mean of T passes.
  const err = tf.tidy(() => {
    const tol = tf.mul(tf.sqrt(tf.div(tf.mul(tf.sum(tf.square(x), 1, true), 0.3 / 0.7), T)), 5);
    return tf.max(tf.sub(tf.abs(tf.sub(mean, plain)), tol)).dataSync()[0];
  });
  expect(err).toBeLessThanOrEqual(0);
  tf.dispose([mean, variance, plain]);
  model.dispose();
});

test('works through a nested model and with every stochastic layer kind', () => {
  const inner = tf.sequential({
    layers: [
      layers.dropConnectDense({ units: 4, rate: 0.3, inputShape: [8] }),
      layers.gaussianDropout({ rate: 0.2 }),
      layers.dropPath({ rate: 0.2 }),
    ],
  });
  const input = tf.input({ shape: [8] });
  const output = tf.layers.dense({ units: 1 }).apply(inner.apply(input)) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: output });
  const { mean, variance } = mcPredict<tf.Tensor>(model, x, { samples: 10 });
  expect(tf.tidy(() => tf.sum(tf.cast(tf.greater(variance, 0), 'float32')).dataSync()[0])).toBe(10);
  tf.dispose([mean, variance]);
  model.dispose();
});

test('no tensor leaks beyond the returned mean and variance', async () => {
  const { model } = bnModel();
  tf.dispose(Object.values(mcPredict(model, x, { samples: 2 })));
  const leaked = await leakedTensors(() => {
    const r = mcPredict(model, x, { samples: 6, seed: 1, batchSize: 4 });
    tf.dispose([r.mean, r.variance]);
  });
  expect(leaked).toBe(0);
  model.dispose();
});

test('a failing pass restores the layers (mcActive false) and leaks nothing', async () => {
  const { model, drop } = bnModel();
  const wrong = tf.zeros([3, 5]);
  const leaked = await leakedTensors(() => {
    expect(() => mcPredict(model, wrong, { samples: 3 })).toThrow();
  });
  expect(leaked).toBe(0);
  expect(drop.mcActive).toBe(false);
  wrong.dispose();
  model.dispose();
});

test('a model with only built-in dropout layers: they are sampled, on a converted copy', () => {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: 4, inputShape: [8] }),
      tf.layers.dropout({ rate: 0.5, name: 'builtin_drop' }),
      tf.layers.alphaDropout({ rate: 0.1, name: 'builtin_alpha' }),
      tf.layers.dense({ units: 1 }),
    ],
  });
  const r = mcPredict(model, x, { samples: 5, seed: 1 });
  expect(r.stochasticLayers).toEqual(['builtin_drop', 'builtin_alpha']);
  expect(tf.tidy(() => tf.min(r.variance).dataSync()[0])).toBeGreaterThan(0);
  expect(model.layers.map((l) => l.getClassName())).toEqual([
    'Dense',
    'Dropout',
    'AlphaDropout',
    'Dense',
  ]);
  const plain = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [8] })] });
  expect(() => mcPredict(plain, x)).toThrow(/expected dropout layers in the model to exist/);
  const { model: ok } = bnModel();
  expect(() => mcPredict(ok, x, { samples: 0 })).toThrow(
    /expected samples to be a positive integer, received: samples=0/,
  );
  tf.dispose([r.mean, r.variance]);
  [model, plain, ok].forEach((m) => m.dispose());
});
