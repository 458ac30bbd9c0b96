import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { BatchNorm, layers } from 'tfjs-dropnorm';
import { fileSystem } from 'tfjs-dropnorm/node';
import { leakedTensors, maxAbsDiff } from './helpers';

function data(n: number, seed: number): { x: tf.Tensor; y: tf.Tensor } {
  const x = tf.randomNormal([n, 6], 2, 3, 'float32', seed);
  const y = tf.oneHot(tf.cast(tf.greater(tf.sum(x, 1), 12), 'int32'), 2);
  return { x, y };
}

function sequentialModel(bnArgs: Parameters<typeof layers.batchNorm>[0] = {}): tf.Sequential {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({
        units: 8,
        inputShape: [6],
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      }),
      layers.batchNorm(bnArgs),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.dense({
        units: 2,
        activation: 'softmax',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
      }),
    ],
  });
  model.compile({ optimizer: tf.train.sgd(0.1), loss: 'categoricalCrossentropy' });
  return model;
}

function functionalModel(): tf.LayersModel {
  const input = tf.input({ shape: [4, 4, 3] });
  const conv = tf.layers
    .conv2d({
      filters: 4,
      kernelSize: 3,
      padding: 'same',
      kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }),
    })
    .apply(input) as tf.SymbolicTensor;
  const bn = layers.batchNorm({ momentum: null }).apply(conv) as tf.SymbolicTensor;
  const skip = tf.layers.add().apply([
    bn,
    tf.layers
      .conv2d({
        filters: 4,
        kernelSize: 1,
        kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }),
      })
      .apply(input) as tf.SymbolicTensor,
  ]) as tf.SymbolicTensor;
  const out = tf.layers
    .dense({ units: 2, activation: 'softmax' })
    .apply(tf.layers.flatten().apply(skip)) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  return model;
}

async function roundTripInMemory(model: tf.LayersModel): Promise<tf.LayersModel> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return tf.loadLayersModel(tf.io.fromMemory(artifacts!));
}

describe('BatchNorm inside models', () => {
  test('model.fit in a Sequential model lowers the loss and updates the moving statistics', async () => {
    const model = sequentialModel();
    const { x, y } = data(64, 1);
    const bn = model.layers[1];
    const before = bn.getWeights()[2].dataSync().slice();
    const history = await model.fit(x, y, { epochs: 5, batchSize: 16, verbose: 0 });
    const losses = history.history.loss as number[];
    expect(losses[4]).toBeLessThan(losses[0]);
    const after = bn.getWeights()[2].dataSync();
    expect(Math.max(...after.map((v, i) => Math.abs(v - before[i])))).toBeGreaterThan(0.01);
  });

  test('model.fit in a functional model (conv, cumulative BN, residual add)', async () => {
    const model = functionalModel();
    const x = tf.randomNormal([12, 4, 4, 3], 0, 1, 'float32', 5);
    const y = tf.oneHot(tf.tensor1d([0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0], 'int32'), 2);
    await model.fit(x, y, { epochs: 2, batchSize: 4, verbose: 0 });
    const bn = model.layers.find((l) => l instanceof BatchNorm)!;
    // 3 batches × 2 epochs.
    expect(bn.getWeights()[4].dataSync()[0]).toBe(6);
  });

  test.each([
    ['in-memory', 'memory'],
    ['directory (file://)', 'directory'],
  ])('save → load round trip (%s) keeps predictions and config', async (_, kind) => {
    const model = functionalModel();
    const x = tf.randomNormal([6, 4, 4, 3], 0, 1, 'float32', 6);
    const y = tf.oneHot(tf.tensor1d([0, 1, 0, 1, 1, 0], 'int32'), 2);
    await model.fit(x, y, { epochs: 1, batchSize: 3, verbose: 0 });
    let loaded: tf.LayersModel;
    if (kind === 'memory') {
      loaded = await roundTripInMemory(model);
    } else {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dropnorm-'));
      await model.save(`file://${dir}`);
      expect(fs.readdirSync(dir).sort()).toEqual([
        'model.json',
        expect.stringMatching(/^weights\.[0-9a-f]{16}\.bin$/),
      ]);
      loaded = await tf.loadLayersModel(`file://${path.join(dir, 'model.json')}`);
      const viaHandler = await tf.loadLayersModel(fileSystem(dir));
      expect(maxAbsDiff(viaHandler.predict(x) as tf.Tensor, model.predict(x) as tf.Tensor)).toBe(0);
    }
    expect(maxAbsDiff(loaded.predict(x) as tf.Tensor, model.predict(x) as tf.Tensor)).toBe(0);
    const bnBefore = model.layers.find((l) => l instanceof BatchNorm)!;
    const bnAfter = loaded.layers.find((l) => l instanceof BatchNorm)!;
    expect(bnAfter.getConfig()).toEqual(bnBefore.getConfig());
    expect(bnAfter.getWeights()[4].dataSync()[0]).toBe(2);
  });

  test('a frozen BatchNorm (trainable = false) keeps all four weights and uses the moving statistics', async () => {
    const model = sequentialModel();
    const bn = model.layers[1];
    bn.setWeights([
      tf.tensor1d([1, 2, 0.5, 1, 1, 1, 1.5, 1]),
      tf.tensor1d([0, 1, 0, -1, 0, 0, 0.5, 0]),
      tf.fill([8], 0.3),
      tf.fill([8], 2),
    ]);
    bn.trainable = false;
    model.compile({ optimizer: tf.train.sgd(0.1), loss: 'categoricalCrossentropy' });
    const before = bn.getWeights().map((w) => w.dataSync().slice());
    const { x, y } = data(32, 7);
    await model.fit(x, y, { epochs: 2, batchSize: 8, verbose: 0 });
    bn.getWeights().forEach((w, i) =>
      expect(Array.from(w.dataSync())).toEqual(Array.from(before[i])),
    );
    // In training mode it normalizes with the moving statistics (as at inference).
    const h = tf.randomNormal([5, 8], 0, 1, 'float32', 8);
    expect(maxAbsDiff(bn.apply(h, { training: true }) as tf.Tensor, bn.apply(h) as tf.Tensor)).toBe(
      0,
    );
  });

  test('the built-in frozen BatchNormalization still moves its statistics (recorded difference)', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ units: 4, inputShape: [6] }),
        tf.layers.batchNormalization(),
        tf.layers.dense({ units: 2, activation: 'softmax' }),
      ],
    });
    model.layers[1].trainable = false;
    model.compile({ optimizer: tf.train.sgd(0.1), loss: 'categoricalCrossentropy' });
    const { x, y } = data(32, 9);
    await model.fit(x, y, { epochs: 2, batchSize: 8, verbose: 0 });
    const movingMean = model.layers[1].getWeights()[2].dataSync();
    expect(Math.max(...movingMean.map(Math.abs))).toBeGreaterThan(0.01);
  });

  test('no tensor leaks over 50 fit steps and 50 predict calls', async () => {
    const model = sequentialModel({ momentum: null });
    const { x, y } = data(16, 10);
    await model.fit(x, y, { epochs: 1, batchSize: 16, verbose: 0 }); // warm-up: optimizer slots
    const fitLeak = await leakedTensors(() =>
      model.fit(x, y, { epochs: 50, batchSize: 16, verbose: 0 }),
    );
    expect(fitLeak).toBe(0);
    const predictLeak = await leakedTensors(() => {
      for (let i = 0; i < 50; i++) (model.predict(x) as tf.Tensor).dispose();
    });
    expect(predictLeak).toBe(0);
  });

  test('trains on the wasm backend with the same result as on cpu', async () => {
    require('@tensorflow/tfjs-backend-wasm');
    const run = async (backend: string) => {
      await tf.setBackend(backend);
      const layer = layers.batchNorm({ axis: 1 });
      const x = tf.tensor4d(
        Array.from({ length: 2 * 3 * 2 * 2 }, (_, i) => Math.sin(i) * 3 + i / 5),
        [2, 3, 2, 2],
      );
      const y = (layer.apply(x, { training: true }) as tf.Tensor).dataSync().slice();
      const mv = layer.getWeights()[3].dataSync().slice();
      return { y, mv };
    };
    try {
      const wasm = await run('wasm');
      const cpu = await run('cpu');
      wasm.y.forEach((v, i) => expect(v).toBeCloseTo(cpu.y[i], 5));
      wasm.mv.forEach((v, i) => expect(v).toBeCloseTo(cpu.mv[i], 5));
    } finally {
      await tf.setBackend('cpu');
    }
  });
});
