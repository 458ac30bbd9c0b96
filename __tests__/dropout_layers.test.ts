// Every layer of the dropout family inside models: model.fit, save → load (config including seed
// and mode), no tensor leaks, config round trip; and the bad-input errors.
import * as tf from '@tensorflow/tfjs';
import {
  AlphaDropout,
  DropBlock2D,
  DropConnectDense,
  DropPath,
  Dropout,
  DropnormValueError,
  GaussianDropout,
  PACK_CLASS_NAMES,
  SpatialDropout1D,
  SpatialDropout2D,
  SpatialDropout3D,
  layers,
} from 'tfjs-dropnorm';
import { leakedTensors, maxAbsDiff } from './helpers';

interface Case {
  name: string;
  cls: { className: string };
  make: () => tf.layers.Layer;
  /** Per-sample input shape of the small model. */
  inputShape: number[];
}

const CASES: Case[] = [
  {
    name: 'dropout (classic, noiseShape)',
    cls: Dropout,
    make: () =>
      layers.dropout({ rate: 0.3, seed: 1, mode: 'classic', noiseShape: [null, 1, null] }),
    inputShape: [3, 4],
  },
  {
    name: 'dropout',
    cls: Dropout,
    make: () => layers.dropout({ rate: 0.3, seed: 1 }),
    inputShape: [6],
  },
  {
    name: 'spatialDropout1d',
    cls: SpatialDropout1D,
    make: () => layers.spatialDropout1d({ rate: 0.3, seed: 2, dataFormat: 'channelsFirst' }),
    inputShape: [3, 5],
  },
  {
    name: 'spatialDropout2d',
    cls: SpatialDropout2D,
    make: () => layers.spatialDropout2d({ rate: 0.3, seed: 3 }),
    inputShape: [4, 4, 3],
  },
  {
    name: 'spatialDropout3d',
    cls: SpatialDropout3D,
    make: () => layers.spatialDropout3d({ rate: 0.3, seed: 4, dataFormat: 'channelsFirst' }),
    inputShape: [2, 3, 3, 3],
  },
  {
    name: 'gaussianDropout',
    cls: GaussianDropout,
    make: () => layers.gaussianDropout({ rate: 0.3, seed: 5 }),
    inputShape: [6],
  },
  {
    name: 'alphaDropout',
    cls: AlphaDropout,
    make: () => layers.alphaDropout({ rate: 0.3, seed: 6 }),
    inputShape: [6],
  },
  {
    name: 'dropConnectDense',
    cls: DropConnectDense,
    make: () =>
      layers.dropConnectDense({
        units: 4,
        rate: 0.3,
        seed: 7,
        activation: 'relu',
        dropBias: true,
        biasInitializer: 'ones',
        kernelRegularizer: tf.regularizers.l2({ l2: 1e-3 }),
      }),
    inputShape: [6],
  },
  {
    name: 'dropBlock2d',
    cls: DropBlock2D,
    make: () =>
      layers.dropBlock2d({ rate: 0.3, blockSize: 3, seed: 8, dataFormat: 'channelsFirst' }),
    inputShape: [2, 6, 6],
  },
  {
    name: 'dropPath',
    cls: DropPath,
    make: () => layers.dropPath({ rate: 0.3, seed: 9 }),
    inputShape: [6],
  },
];

function smallModel(c: Case): { model: tf.Sequential; layer: tf.layers.Layer } {
  const layer = c.make();
  const model = tf.sequential();
  model.add(tf.layers.inputLayer({ inputShape: c.inputShape }));
  model.add(layer);
  if (c.inputShape.length > 1) model.add(tf.layers.flatten());
  model.add(tf.layers.dense({ units: 1, kernelInitializer: 'ones' }));
  return { model, layer };
}

/** A config as JSON would store it, with `undefined` (e.g. an initializer's seed) as null. */
function normalized(config: tf.serialization.ConfigDict): unknown {
  return JSON.parse(JSON.stringify(config, (_key, value) => (value === undefined ? null : value)));
}

async function roundTrip(model: tf.LayersModel): Promise<tf.LayersModel> {
  let artifacts: tf.io.ModelArtifacts | null = null;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return tf.loadLayersModel(tf.io.fromMemory(artifacts!));
}

describe.each(CASES)('$name', (c) => {
  const batch = 16;
  const x = tf.randomNormal([batch, ...c.inputShape], 0, 1, 'float32', 11);
  const y = tf.randomNormal([batch, 1], 0, 1, 'float32', 12);
  afterAll(() => tf.dispose([x, y]));

  test('trains in a small model with model.fit, and fit leaks no tensors', async () => {
    const { model } = smallModel(c);
    model.compile({ optimizer: tf.train.sgd(0.01), loss: 'meanSquaredError' });
    const before = model.getWeights().map((w) => w.dataSync().slice());
    const history = await model.fit(x, y, { epochs: 2, batchSize: 8, verbose: 0 });
    const losses = history.history.loss as number[];
    expect(losses.every(Number.isFinite)).toBe(true);
    const after = model.getWeights().map((w) => w.dataSync());
    expect(after.some((w, i) => w.some((v, j) => v !== before[i][j]))).toBe(true);
    const leaked = await leakedTensors(() =>
      model.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0 }),
    );
    expect(leaked).toBe(0);
    model.dispose();
  });

  test('save → load keeps the class, the config (seed, mode…) and the weights; same seed, same masks', async () => {
    const { model, layer } = smallModel(c);
    const loaded = await roundTrip(model);
    const loadedLayer = loaded.getLayer(layer.name);
    expect(loadedLayer.getClassName()).toBe(c.cls.className);
    expect(loadedLayer.constructor).toBe(c.cls);
    expect(normalized(loadedLayer.getConfig())).toEqual(normalized(layer.getConfig()));
    expect(layer.getConfig()['seed']).not.toBeNull();
    const yi = model.predict(x) as tf.Tensor;
    const yl = loaded.predict(x) as tf.Tensor;
    expect(maxAbsDiff(yi, yl)).toBe(0);
    // Both are at call 0 of the same seed: the first training passes are equal, and stochastic.
    const ti = model.apply(x, { training: true }) as tf.Tensor;
    const tl = loaded.apply(x, { training: true }) as tf.Tensor;
    expect(maxAbsDiff(ti, tl)).toBe(0);
    expect(maxAbsDiff(ti, yi)).toBeGreaterThan(0);
    tf.dispose([yi, yl, ti, tl]);
    model.dispose();
    loaded.dispose();
  });

  test('getConfig → fromConfig round trip', () => {
    const layer = c.make();
    const config = layer.getConfig();
    const copy = tf.serialization.SerializationMap.getMap().classNameMap[c.cls.className];
    const rebuilt = copy[1](copy[0], config) as unknown as tf.layers.Layer;
    expect(rebuilt.getConfig()).toEqual(config);
  });

  test('no tensor leaks in training and inference calls', async () => {
    const layer = c.make();
    const input = tf.randomNormal([4, ...c.inputShape], 0, 1, 'float32', 13);
    tf.dispose(layer.apply(input, { training: true }) as tf.Tensor); // build + weights
    const leaked = await leakedTensors(() => {
      for (const training of [true, false, undefined]) {
        for (let i = 0; i < 3; i++) tf.dispose(layer.apply(input, { training }) as tf.Tensor);
      }
    });
    expect(leaked).toBe(0);
    input.dispose();
  });
});

test('class names are registered and never a tfjs built-in name', () => {
  for (const name of [
    'DropnormDropout',
    'DropnormSpatialDropout1D',
    'DropnormSpatialDropout2D',
    'DropnormSpatialDropout3D',
    'DropnormGaussianDropout',
    'DropnormAlphaDropout',
    'DropnormDropConnectDense',
    'DropnormDropBlock2D',
    'DropnormDropPath',
  ]) {
    expect(PACK_CLASS_NAMES).toContain(name);
  }
  const map = tf.serialization.SerializationMap.getMap().classNameMap;
  expect(map['Dropout'][0]).toBe(tf.layers.dropout({ rate: 0.1 }).constructor);
  expect(map['AlphaDropout'][0]).toBe(tf.layers.alphaDropout({ rate: 0.1 }).constructor);
});

test('dropConnectDense weights are interchangeable with tf.layers.dense (shapes, names, order)', () => {
  const ours = layers.dropConnectDense({ units: 3, rate: 0.2, inputDim: 5 });
  const dense = tf.layers.dense({ units: 3, inputDim: 5 });
  ours.build([null, 5]);
  dense.build([null, 5]);
  expect(ours.weights.map((w) => [w.shape, w.originalName.split('/').pop()])).toEqual(
    dense.weights.map((w) => [w.shape, w.originalName.split('/').pop()]),
  );
  ours.setWeights(dense.getWeights());
  dense.setWeights(ours.getWeights());
  const noBias = layers.dropConnectDense({ units: 3, rate: 0.2, useBias: false });
  noBias.build([null, 5]);
  expect(noBias.weights.map((w) => w.shape)).toEqual([[5, 3]]);
  expect(ours.batchInputShape).toEqual([null, 5]);
});

test('dropConnectDense on rank-3 input matches tf.layers.dense (inference) and keeps the shape', () => {
  const x = tf.randomNormal([2, 3, 5], 0, 1, 'float32', 14);
  const ours = layers.dropConnectDense({ units: 4, rate: 0.5, activation: 'tanh', seed: 1 });
  const dense = tf.layers.dense({ units: 4, activation: 'tanh' });
  const yt = ours.apply(x, { training: true }) as tf.Tensor;
  expect(yt.shape).toEqual([2, 3, 4]);
  dense.apply(x);
  dense.setWeights(ours.getWeights());
  const y = ours.apply(x) as tf.Tensor;
  const yd = dense.apply(x) as tf.Tensor;
  expect(maxAbsDiff(y, yd)).toBeLessThan(1e-6);
  expect(maxAbsDiff(yt, yd)).toBeGreaterThan(0);
  const symbolic = ours.apply(tf.input({ shape: [3, 5] })) as tf.SymbolicTensor;
  expect(symbolic.shape).toEqual([null, 3, 4]);
  tf.dispose([x, yt, y, yd]);
});

describe('bad input: clear errors', () => {
  const FACTORIES: [string, (rate: number) => tf.layers.Layer][] = [
    ['dropout', (rate) => layers.dropout({ rate })],
    ['spatialDropout1d', (rate) => layers.spatialDropout1d({ rate })],
    ['spatialDropout2d', (rate) => layers.spatialDropout2d({ rate })],
    ['spatialDropout3d', (rate) => layers.spatialDropout3d({ rate })],
    ['gaussianDropout', (rate) => layers.gaussianDropout({ rate })],
    ['alphaDropout', (rate) => layers.alphaDropout({ rate })],
    ['dropConnectDense', (rate) => layers.dropConnectDense({ rate, units: 2 })],
    ['dropBlock2d', (rate) => layers.dropBlock2d({ rate, blockSize: 3 })],
    ['dropPath', (rate) => layers.dropPath({ rate })],
  ];
  test.each(FACTORIES)('%s rejects rate < 0, ≥ 1 and NaN, naming the value', (_n, make) => {
    for (const [rate, shown] of [
      [-0.1, 'rate=-0.1'],
      [1, 'rate=1'],
      [1.2, 'rate=1.2'],
      [NaN, 'rate=NaN'],
    ] as const) {
      expect(() => make(rate)).toThrow(DropnormValueError);
      expect(() => make(rate)).toThrow(`expected rate to be a number in [0, 1)`);
      expect(() => make(rate)).toThrow(`received: ${shown}.`);
    }
    expect(() => make(0)).not.toThrow();
    expect(() => make(0.99)).not.toThrow();
  });

  test.each([
    [
      'spatialDropout1d',
      () => layers.spatialDropout1d({ rate: 0.1 }),
      [2, 3, 4, 5],
      /expected input rank to be 3 \(\[batch, length, channels\]\), received: input rank=4/,
    ],
    [
      'spatialDropout2d',
      () => layers.spatialDropout2d({ rate: 0.1 }),
      [2, 3, 4],
      /expected input rank to be 4 \(\[batch, height, width, channels\]\), received: input rank=3/,
    ],
    [
      'spatialDropout3d',
      () => layers.spatialDropout3d({ rate: 0.1, dataFormat: 'channelsFirst' }),
      [2, 3, 4, 5],
      /expected input rank to be 5 \(\[batch, channels, depth, height, width\]\), received: input rank=4/,
    ],
    [
      'dropBlock2d',
      () => layers.dropBlock2d({ rate: 0.1, blockSize: 3 }),
      [2, 8, 8],
      /expected input rank to be 4 \(\[batch, height, width, channels\]\), received: input rank=3/,
    ],
  ] as const)('%s: wrong input rank', (_n, make, shape, message) => {
    const x = tf.zeros(shape as unknown as number[]);
    expect(() => make().apply(x)).toThrow(message);
    expect(() =>
      tf.sequential({
        layers: [
          tf.layers.inputLayer({ inputShape: shape.slice(1) as unknown as number[] }),
          make(),
        ],
      }),
    ).toThrow(message);
    x.dispose();
  });

  test('dropBlock2d: blockSize larger than the feature map', () => {
    const x = tf.zeros([2, 5, 7, 3]);
    expect(() =>
      layers.dropBlock2d({ rate: 0.1, blockSize: 6 }).apply(x, { training: true }),
    ).toThrow(
      /expected blockSize to be at most the feature map's height and width \(5×7\), received: blockSize=6/,
    );
    const cf = tf.zeros([2, 3, 8, 4]);
    expect(() =>
      layers.dropBlock2d({ rate: 0.1, blockSize: 5, dataFormat: 'channelsFirst' }).apply(cf),
    ).toThrow(/\(8×4\), received: blockSize=5/);
    expect(() => layers.dropBlock2d({ rate: 0.1, blockSize: 5 }).apply(x)).not.toThrow();
    expect(() => layers.dropBlock2d({ rate: 0.1, blockSize: 0 })).toThrow(
      /expected blockSize to be a positive integer, received: blockSize=0/,
    );
    expect(() => layers.dropBlock2d({ rate: 0.1, blockSize: 2.5 })).toThrow(
      /received: blockSize=2.5/,
    );
    tf.dispose([x, cf]);
  });

  test('a noiseShape that does not broadcast', () => {
    const x = tf.zeros([4, 3, 5]);
    expect(() =>
      layers.dropout({ rate: 0.1, noiseShape: [null, 2, null] }).apply(x, { training: true }),
    ).toThrow(
      /expected noiseShape to broadcast against the input \(entry 1 is 2, the input has 3\), received: noiseShape=\[null,2,null\]/,
    );
    expect(() =>
      layers.dropout({ rate: 0.1, noiseShape: [4, 1] }).apply(x, { training: true }),
    ).toThrow(/expected noiseShape to have the input's rank 3, received: noiseShape=\[4,1\]/);
    expect(() => layers.alphaDropout({ rate: 0.1, noiseShape: [1, 1, 7] }).apply(x)).toThrow(
      /noiseShape/,
    );
    expect(() => layers.dropout({ rate: 0.1, noiseShape: [0, 1, 1] })).toThrow(
      /positive integers or nulls/,
    );
    // In a model, at build time.
    expect(() =>
      tf.sequential({
        layers: [
          tf.layers.inputLayer({ inputShape: [3, 5] }),
          layers.dropout({ rate: 0.1, noiseShape: [null, 1, 4] }),
        ],
      }),
    ).toThrow(/entry 2 is 4, the input has 5/);
    expect(() =>
      layers.dropout({ rate: 0.1, noiseShape: [null, 1, 5] }).apply(x, { training: true }),
    ).not.toThrow();
    x.dispose();
  });

  test('mode, dataFormat, seed, units and activation', () => {
    expect(() => layers.dropout({ rate: 0.1, mode: 'scaled' as never })).toThrow(
      /expected mode to be 'inverted' or 'classic', received: mode="scaled"/,
    );
    expect(() => layers.spatialDropout2d({ rate: 0.1, dataFormat: 'NHWC' as never })).toThrow(
      /expected dataFormat to be 'channelsLast' or 'channelsFirst', received: dataFormat="NHWC"/,
    );
    expect(() => layers.dropout({ rate: 0.1, seed: NaN })).toThrow(/received: seed=NaN/);
    expect(() => layers.dropConnectDense({ rate: 0.1, units: 0 })).toThrow(
      /expected units to be a positive integer, received: units=0/,
    );
    expect(() =>
      layers.dropConnectDense({ rate: 0.1, units: 2, activation: 'nope' as never }),
    ).toThrow(/received: activation="nope"/);
  });

  test('dropPath needs a sample axis', () => {
    const v = tf.zeros([5]);
    expect(() => layers.dropPath({ rate: 0.1 }).apply(v)).toThrow(
      /expected input rank to be at least 2 \(\[batch, …\]\), received: input rank=1/,
    );
    v.dispose();
  });

  test('messages name the layer', () => {
    expect(() => layers.dropout({ rate: 2, name: 'drop_a' })).toThrow(
      /^Dropout 'drop_a': expected rate/,
    );
  });
});
