// The dropout family on the wasm backend: the same seeded masks as on cpu (randomness is drawn
// in JS, the arithmetic must agree), training in model.fit, inference, mcPredict, no leaks.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { layers, mcPredict } from 'tfjs-dropnorm';
import { leakedTensors, withoutLeakCheck } from './helpers';

const CASES: [string, () => tf.layers.Layer, number[]][] = [
  ['dropout', () => layers.dropout({ rate: 0.3, seed: 1 }), [6, 10]],
  ['dropout classic', () => layers.dropout({ rate: 0.3, seed: 1, mode: 'classic' }), [6, 10]],
  ['spatialDropout1d', () => layers.spatialDropout1d({ rate: 0.3, seed: 2 }), [6, 5, 4]],
  [
    'spatialDropout2d',
    () => layers.spatialDropout2d({ rate: 0.3, seed: 3, dataFormat: 'channelsFirst' }),
    [6, 4, 5, 5],
  ],
  ['spatialDropout3d', () => layers.spatialDropout3d({ rate: 0.3, seed: 4 }), [6, 2, 3, 3, 4]],
  ['gaussianDropout', () => layers.gaussianDropout({ rate: 0.3, seed: 5 }), [6, 10]],
  ['alphaDropout', () => layers.alphaDropout({ rate: 0.3, seed: 6 }), [6, 10]],
  [
    'dropConnectDense',
    () => layers.dropConnectDense({ units: 5, rate: 0.3, seed: 7, kernelInitializer: 'ones' }),
    [6, 10],
  ],
  ['dropBlock2d', () => layers.dropBlock2d({ rate: 0.3, blockSize: 3, seed: 8 }), [6, 8, 8, 2]],
  ['dropPath', () => layers.dropPath({ rate: 0.5, seed: 9 }), [6, 10]],
];

/** Two seeded training calls and one inference call, as plain arrays. */
function run(make: () => tf.layers.Layer, shape: number[]): number[][] {
  const layer = make();
  const x = tf.randomNormal(shape, 0, 1, 'float32', 42);
  const outs = [{ training: true }, { training: true }, {}].map((kwargs) => {
    const y = layer.apply(x, kwargs) as tf.Tensor;
    const values = Array.from(y.dataSync());
    y.dispose();
    return values;
  });
  x.dispose();
  return outs;
}

const cpuResults = new Map<string, number[][]>();

beforeAll(async () => {
  await tf.setBackend('cpu');
  for (const [name, make, shape] of CASES) cpuResults.set(name, run(make, shape));
  expect(await tf.setBackend('wasm')).toBe(true);
  expect(tf.getBackend()).toBe('wasm');
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

describe.each(CASES)('%s on wasm', (name, make, shape) => {
  test('the same seeded outputs as cpu, in training and inference', () => {
    const wasm = run(make, shape);
    const cpu = cpuResults.get(name)!;
    for (let k = 0; k < 3; k++) {
      const err = Math.max(...wasm[k].map((v, i) => Math.abs(v - cpu[k][i])));
      expect(err).toBeLessThan(1e-4);
    }
    // The two training calls differ (a new mask each call) on wasm too.
    expect(wasm[0].some((v, i) => v !== wasm[1][i])).toBe(true);
  });

  test('model.fit trains, and training calls leak no tensors', async () => {
    const layer = make();
    const model = tf.sequential();
    model.add(tf.layers.inputLayer({ inputShape: shape.slice(1) }));
    model.add(layer);
    if (shape.length > 2) model.add(tf.layers.flatten());
    model.add(tf.layers.dense({ units: 1 }));
    model.compile({ optimizer: tf.train.sgd(0.01), loss: 'meanSquaredError' });
    const x = tf.randomNormal(shape, 0, 1, 'float32', 43);
    const y = tf.randomNormal([shape[0], 1], 0, 1, 'float32', 44);
    // The built-in Dense's fusedMatMul gradient trips tfjs's IS_TEST leak check on wasm (see
    // withoutLeakCheck); leaks are measured below.
    const history = await withoutLeakCheck(() =>
      model.fit(x, y, { epochs: 2, batchSize: 3, verbose: 0 }),
    );
    expect((history.history.loss as number[]).every(Number.isFinite)).toBe(true);
    const fitLeak = await leakedTensors(() =>
      withoutLeakCheck(() => model.fit(x, y, { epochs: 1, batchSize: 3, verbose: 0 })),
    );
    expect(fitLeak).toBe(0);
    const leaked = await leakedTensors(() => {
      for (let i = 0; i < 3; i++) tf.dispose(layer.apply(x, { training: true }) as tf.Tensor);
    });
    expect(leaked).toBe(0);
    tf.dispose([x, y]);
    model.dispose();
  });
});

test('mcPredict on wasm, BatchNorm statistics unchanged', () => {
  const bn = layers.batchNorm();
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: 8, inputShape: [4] }),
      bn,
      layers.dropout({ rate: 0.5 }),
      tf.layers.dense({ units: 1 }),
    ],
  });
  const x = tf.randomNormal([5, 4], 0, 1, 'float32', 45);
  const before = bn.getWeights().map((w) => Array.from(w.dataSync()));
  const { mean, variance } = mcPredict(model, x, { samples: 8, seed: 1 });
  expect(tf.getBackend()).toBe('wasm');
  expect(tf.tidy(() => tf.min(variance).dataSync()[0])).toBeGreaterThan(0);
  expect(bn.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(before);
  tf.dispose([x, mean, variance]);
  model.dispose();
});
