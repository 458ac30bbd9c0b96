import * as tf from '@tensorflow/tfjs';
import {
  BatchNorm,
  PACK_CLASS_NAMES,
  foldBatchNorm,
  foldBatchNormAsync,
  layers as dn,
} from 'tfjs-dropnorm';
import {
  classNamesInJson,
  predict,
  randn,
  randomizeBatchNorms,
  relativeDiff,
  snapshotWeights,
} from './fold_helpers';
import { maxAbsDiff } from './helpers';

const TOL = 1e-4;

/** Folds, and checks the folded model predicts what the reference predicts. */
function foldAndCompare(
  model: tf.LayersModel,
  x: tf.Tensor | tf.Tensor[],
  reference: tf.Tensor = predict(model, x),
) {
  const result = foldBatchNorm(model);
  expect(relativeDiff(predict(result.model, x), reference)).toBeLessThan(TOL);
  return result;
}

function countBatchNorms(model: tf.LayersModel): number {
  return model.layers.filter((l) =>
    ['BatchNormalization', BatchNorm.className].includes(l.getClassName()),
  ).length;
}

describe('foldBatchNorm: folds into the preceding layer', () => {
  it('MLP with the pack BN after Dense, trained statistics', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [6], units: 8 }),
        dn.batchNorm({ momentum: 0.5 }),
        tf.layers.activation({ activation: 'relu' }),
        tf.layers.dense({ units: 3 }),
        dn.batchNorm({ momentum: 0.5 }),
      ],
    });
    model.compile({ optimizer: tf.train.adam(0.05), loss: 'meanSquaredError' });
    const x = randn([64, 6], 1, 3, 2);
    await model.fit(x, randn([64, 3], 2, -1, 4), { epochs: 3, batchSize: 16, verbose: 0 });
    const movingMean = model.layers[1].getWeights()[2].dataSync();
    expect(Math.max(...Array.from(movingMean, Math.abs))).toBeGreaterThan(0.1);

    const { model: folded, folded: list, skipped } = foldAndCompare(model, x);
    expect(list.map((f) => [f.batchNorm, f.into, f.direction])).toEqual([
      [model.layers[1].name, model.layers[0].name, 'backward'],
      [model.layers[4].name, model.layers[3].name, 'backward'],
    ]);
    expect(skipped).toEqual([]);
    expect(countBatchNorms(folded)).toBe(0);
    expect(folded.layers.length).toBe(model.layers.length - 2 + 1); // + the InputLayer
  });

  it('CNN channels-last with the built-in BN', () => {
    const input = tf.input({ shape: [8, 8, 3] });
    let h = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same' }).apply(input);
    h = tf.layers.batchNormalization().apply(h);
    h = tf.layers.activation({ activation: 'relu' }).apply(h);
    h = tf.layers.conv2d({ filters: 5, kernelSize: 3, strides: 2 }).apply(h);
    h = tf.layers.batchNormalization({ axis: 3 }).apply(h) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: h });
    randomizeBatchNorms(model, 3);
    const { folded, skipped } = foldAndCompare(model, randn([2, 8, 8, 3], 4));
    expect(folded.length).toBe(2);
    expect(skipped).toEqual([]);
  });

  it('CNN channels-first with the pack BN (axis 1)', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({
          inputShape: [3, 6, 6],
          filters: 4,
          kernelSize: 3,
          dataFormat: 'channelsFirst',
        }),
        dn.batchNorm({ axis: 1 }),
      ],
    });
    randomizeBatchNorms(model, 5);
    const { folded, skipped } = foldAndCompare(model, randn([2, 3, 6, 6], 6));
    expect(folded.length).toBe(1);
    expect(skipped).toEqual([]);
  });

  it('CNN channels-first with the built-in BN folds into the correct map (tfjs#1106)', () => {
    const conv = tf.layers.conv2d({
      inputShape: [3, 5, 5],
      filters: 4,
      kernelSize: 3,
      padding: 'same',
      dataFormat: 'channelsFirst',
    });
    const bn = tf.layers.batchNormalization({ axis: 1 });
    const model = tf.sequential({ layers: [conv, bn] });
    randomizeBatchNorms(model, 7);
    const x = randn([2, 3, 5, 5], 8);
    // The direct computation along axis 1: γ·(z−μ)/√(σ²+ε) + β.
    const [gamma, beta, mean, variance] = bn.getWeights().map((w) => tf.reshape(w, [1, 4, 1, 1]));
    const z = conv.apply(x) as tf.Tensor;
    const reference = tf.add(
      tf.mul(tf.div(tf.sub(z, mean), tf.sqrt(tf.add(variance, 1e-3))), gamma),
      beta,
    );
    const { folded } = foldAndCompare(model, x, reference);
    expect(folded.length).toBe(1);
    // The built-in itself is wrong here, so the folded model must differ from it.
    expect(relativeDiff(predict(model, x), reference)).toBeGreaterThan(1e-2);
  });

  it('depthwise conv, conv without bias, Conv1D and Conv2DTranspose', () => {
    const input = tf.input({ shape: [6, 6, 3] });
    let h = tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2 }).apply(input);
    h = dn.batchNorm().apply(h);
    h = tf.layers.conv2d({ filters: 4, kernelSize: 1, useBias: false }).apply(h);
    h = tf.layers.batchNormalization().apply(h);
    h = tf.layers
      .conv2dTranspose({ filters: 3, kernelSize: 3, strides: 2, padding: 'same' })
      .apply(h);
    h = dn.batchNorm().apply(h);
    h = tf.layers.reshape({ targetShape: [64, 3] }).apply(h);
    h = tf.layers.conv1d({ filters: 2, kernelSize: 3 }).apply(h);
    h = tf.layers.batchNormalization().apply(h) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: h });
    randomizeBatchNorms(model, 9);
    const result = foldAndCompare(model, randn([2, 6, 6, 3], 10));
    expect(result.folded.map((f) => f.into)).toEqual(
      model.layers.filter((l) => /conv/i.test(l.getClassName())).map((l) => l.name),
    );
    expect(result.skipped).toEqual([]);
    const noBias = result.model.layers.find((l) => l.getClassName() === 'Conv2D')!;
    expect(noBias.getConfig().useBias).toBe(true);
  });

  it('BN with center and scale off', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [4], units: 5 }),
        dn.batchNorm({ center: false, scale: false }),
        tf.layers.dense({ units: 3 }),
        tf.layers.batchNormalization({ center: false }),
      ],
    });
    randomizeBatchNorms(model, 11);
    const { folded } = foldAndCompare(model, randn([8, 4], 12));
    expect(folded.length).toBe(2);
  });

  it('residual block', () => {
    const input = tf.input({ shape: [6, 6, 4] });
    let h = tf.layers
      .conv2d({ filters: 4, kernelSize: 3, padding: 'same', useBias: false })
      .apply(input);
    h = tf.layers.batchNormalization().apply(h);
    h = tf.layers.activation({ activation: 'relu' }).apply(h);
    h = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same' }).apply(h);
    h = dn.batchNorm().apply(h);
    h = tf.layers.add().apply([h, input] as tf.SymbolicTensor[]);
    h = tf.layers.activation({ activation: 'relu' }).apply(h) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: h });
    randomizeBatchNorms(model, 13);
    const { folded, skipped, model: out } = foldAndCompare(model, randn([2, 6, 6, 4], 14));
    expect(folded.length).toBe(2);
    expect(skipped).toEqual([]);
    expect(out.layers.map((l) => l.getClassName())).toEqual([
      'InputLayer',
      'Conv2D',
      'Activation',
      'Conv2D',
      'Add',
      'Activation',
    ]);
  });

  it('multiple inputs and outputs', () => {
    const a = tf.input({ shape: [3], name: 'a' });
    const b = tf.input({ shape: [2], name: 'b' });
    const ha = dn.batchNorm().apply(tf.layers.dense({ units: 4 }).apply(a)) as tf.SymbolicTensor;
    const hb = tf.layers.batchNormalization().apply(tf.layers.dense({ units: 4 }).apply(b));
    const sum = tf.layers.add().apply([ha, hb as tf.SymbolicTensor]) as tf.SymbolicTensor;
    const out2 = tf.layers.dense({ units: 2 }).apply(ha) as tf.SymbolicTensor;
    const model = tf.model({ inputs: [a, b], outputs: [sum, out2] });
    randomizeBatchNorms(model, 15);
    const xs = [randn([5, 3], 16), randn([5, 2], 17)];
    const before = model.predict(xs) as tf.Tensor[];
    const result = foldBatchNorm(model);
    const after = result.model.predict(xs) as tf.Tensor[];
    expect(result.model.inputNames).toEqual(['a', 'b']);
    expect(after.length).toBe(2);
    after.forEach((t, i) => expect(relativeDiff(t, before[i])).toBeLessThan(TOL));
    expect(result.folded.length).toBe(2);
  });
});

describe('foldBatchNorm: nested models', () => {
  it('folds the BNs of a model used as a layer, and reports the ones it cannot fold', () => {
    const inner = tf.sequential({
      name: 'inner',
      layers: [
        dn.batchNorm({ inputShape: [3] }),
        tf.layers.activation({ activation: 'tanh' }),
        tf.layers.dense({ units: 4 }),
        tf.layers.batchNormalization(),
      ],
    });
    const input = tf.input({ shape: [3] });
    const h = tf.layers.dense({ units: 2 }).apply(inner.apply(input)) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: h });
    randomizeBatchNorms(inner, 61);
    const result = foldAndCompare(model, randn([5, 3], 62));
    expect(result.folded.map((f) => f.batchNorm)).toEqual([inner.layers[3].name]);
    expect(result.skipped.map((f) => f.batchNorm)).toEqual([inner.layers[0].name]);
    const nested = result.model.getLayer('inner') as tf.LayersModel;
    expect(nested.layers.map((l) => l.getClassName())).toEqual([
      'InputLayer',
      'DropnormBatchNorm',
      'Activation',
      'Dense',
    ]);
    expect(inner.layers.length).toBe(4);
  });
});

describe('foldBatchNorm: non-linear activation before the BN', () => {
  it('folds forward into a Dense that reads only the BN', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [4], units: 6, activation: 'relu' }),
        dn.batchNorm(),
        tf.layers.dense({ units: 3 }),
      ],
    });
    randomizeBatchNorms(model, 21);
    const { folded, skipped } = foldAndCompare(model, randn([16, 4], 22));
    expect(folded).toEqual([
      { batchNorm: model.layers[1].name, into: model.layers[2].name, direction: 'forward' },
    ]);
    expect(skipped).toEqual([]);
  });

  it('folds forward into a conv with padding valid, but not into one with padding same', () => {
    const make = (padding: 'valid' | 'same') => {
      const m = tf.sequential({
        layers: [
          tf.layers.conv2d({
            inputShape: [6, 6, 2],
            filters: 3,
            kernelSize: 3,
            activation: 'relu',
          }),
          tf.layers.batchNormalization(),
          tf.layers.conv2d({ filters: 2, kernelSize: 3, padding }),
        ],
      });
      randomizeBatchNorms(m, 23);
      return m;
    };
    const x = randn([2, 6, 6, 2], 24);
    const valid = foldAndCompare(make('valid'), x);
    expect(valid.folded.map((f) => f.direction)).toEqual(['forward']);
    const same = foldAndCompare(make('same'), x);
    expect(same.folded).toEqual([]);
    expect(same.skipped).toHaveLength(1);
    expect(same.skipped[0].reason).toMatch(/activation 'relu'.*padding 'same'/);
  });
});

describe('foldBatchNorm: skipped BNs are reported and predictions still equal', () => {
  it('BN after a layer with two consumers', () => {
    const input = tf.input({ shape: [4] });
    const d = tf.layers.dense({ units: 5 }).apply(input) as tf.SymbolicTensor;
    const bn = dn.batchNorm().apply(d) as tf.SymbolicTensor;
    const out = tf.layers.add().apply([bn, d]) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    randomizeBatchNorms(model, 31);
    const { folded, skipped } = foldAndCompare(model, randn([6, 4], 32));
    expect(folded).toEqual([]);
    expect(skipped[0].batchNorm).toBe(model.layers[2].name);
    expect(skipped[0].reason).toMatch(/has 2 consumers.*not one of Dense/);
  });

  it('BN first in the model', () => {
    const model = tf.sequential({
      layers: [
        dn.batchNorm({ inputShape: [4] }),
        tf.layers.activation({ activation: 'tanh' }),
        tf.layers.dense({ units: 2 }),
      ],
    });
    randomizeBatchNorms(model, 33);
    const { skipped } = foldAndCompare(model, randn([6, 4], 34));
    expect(skipped).toHaveLength(1);
    expect(skipped[0].reason).toMatch(/model input/);
  });

  it('BN after Concatenate', () => {
    const input = tf.input({ shape: [4] });
    const a = tf.layers.dense({ units: 3 }).apply(input) as tf.SymbolicTensor;
    const b = tf.layers.dense({ units: 2 }).apply(input) as tf.SymbolicTensor;
    const cat = tf.layers.concatenate().apply([a, b]) as tf.SymbolicTensor;
    const out = tf.layers.batchNormalization().apply(cat) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    randomizeBatchNorms(model, 35);
    const { skipped } = foldAndCompare(model, randn([6, 4], 36));
    expect(skipped).toHaveLength(1);
    expect(skipped[0].reason).toMatch(/Concatenate .* is not one of Dense/);
  });
});

describe('foldBatchNorm: fuseActivations', () => {
  function block(): tf.LayersModel {
    const input = tf.input({ shape: [6, 6, 2] });
    let h = tf.layers.conv2d({ filters: 3, kernelSize: 3, useBias: false }).apply(input);
    h = dn.batchNorm().apply(h);
    h = tf.layers.activation({ activation: 'relu' }).apply(h);
    h = tf.layers.flatten().apply(h);
    const d = tf.layers.dense({ units: 4 }).apply(h) as tf.SymbolicTensor;
    const t = tf.layers.activation({ activation: 'tanh' }).apply(d) as tf.SymbolicTensor;
    // d has a second consumer, so its tanh cannot move into the Dense.
    const out = tf.layers.concatenate().apply([t, d]) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    randomizeBatchNorms(model, 51);
    return model;
  }

  it('merges an Activation into the linear layer before it, through a folded BN', () => {
    const model = block();
    const x = randn([3, 6, 6, 2], 52);
    const reference = predict(model, x);
    const result = foldBatchNorm(model, { fuseActivations: true });
    expect(relativeDiff(predict(result.model, x), reference)).toBeLessThan(TOL);
    expect(result.fusedActivations).toEqual([
      { activation: model.layers[3].name, into: model.layers[1].name },
    ]);
    const conv = result.model.layers.find((l) => l.getClassName() === 'Conv2D')!;
    expect(conv.getConfig().activation).toBe('relu');
    expect(result.model.layers.map((l) => l.getClassName())).toEqual([
      'InputLayer',
      'Conv2D',
      'Flatten',
      'Dense',
      'Activation',
      'Concatenate',
    ]);
  });

  it('is off by default', () => {
    const result = foldBatchNorm(block());
    expect(result.fusedActivations).toEqual([]);
    expect(result.model.layers.filter((l) => l.getClassName() === 'Activation').length).toBe(2);
  });
});

describe('foldBatchNorm: the input model and the output model', () => {
  function mlp(): tf.LayersModel {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [4], units: 5 }),
        tf.layers.batchNormalization(),
        tf.layers.dense({ units: 3 }),
        dn.batchNorm({ momentum: null }),
      ],
    });
    randomizeBatchNorms(model, 41);
    return model;
  }

  it('leaves the input model weights and predictions unchanged, and shares no weights', () => {
    const model = mlp();
    const x = randn([6, 4], 42);
    const weightsBefore = snapshotWeights(model);
    const before = predict(model, x).dataSync().slice();
    const { model: folded } = foldBatchNorm(model);
    expect(snapshotWeights(model)).toEqual(weightsBefore);
    expect(predict(model, x).dataSync()).toEqual(before);
    expect(model.layers.length).toBe(4);
    // Changing the folded model's weights does not reach the original.
    folded.layers[1].setWeights(folded.layers[1].getWeights().map((w) => tf.zerosLike(w)));
    expect(predict(model, x).dataSync()).toEqual(before);
  });

  it('a fully folded model names no pack class and loads with plain tf.loadLayersModel', async () => {
    const model = mlp();
    const x = randn([6, 4], 43);
    const { model: folded } = foldBatchNorm(model);
    expect(classNamesInJson(model)).toContain(BatchNorm.className);
    const names = classNamesInJson(folded);
    expect(names.filter((n) => PACK_CLASS_NAMES.includes(n))).toEqual([]);
    let artifacts: tf.io.ModelArtifacts | undefined;
    await folded.save(
      tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    expect(JSON.stringify(artifacts!.modelTopology)).not.toMatch(/Dropnorm/);
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts!));
    expect(relativeDiff(predict(loaded, x), predict(model, x))).toBeLessThan(TOL);
  });
});

describe('foldBatchNorm: bad input', () => {
  it('rejects what is not a LayersModel', () => {
    expect(() => foldBatchNorm({} as tf.LayersModel)).toThrow(
      /foldBatchNorm: expected model to be a tf.LayersModel.*received: model="Object"/,
    );
    expect(() => foldBatchNorm(null as unknown as tf.LayersModel)).toThrow(
      /received: model="null"/,
    );
  });

  it('foldBatchNormAsync rejects a non-finite moving variance, leaking nothing and leaving the model untouched', async () => {
    const model = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [3], units: 2 }), dn.batchNorm({ name: 'bad_bn' })],
    });
    const [g, b, m] = model.layers[1].getWeights();
    model.layers[1].setWeights([g, b, m, tf.tensor1d([1, NaN])]);
    const before = snapshotWeights(model);
    const count = tf.memory().numTensors;
    await expect(foldBatchNormAsync(model)).rejects.toThrow(
      /foldBatchNormAsync: expected moving_variance of BatchNorm 'bad_bn' to be finite.*NaN \(channel 1\)/,
    );
    expect(tf.memory().numTensors).toBe(count);
    expect(snapshotWeights(model)).toEqual(before);
  });

  it('foldBatchNormAsync rejects σ² + ε ≤ 0 and a non-finite γ', async () => {
    const model = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [3], units: 2 }), dn.batchNorm({ name: 'bad_bn' })],
    });
    // Copies: getWeights returns the variables themselves, which setWeights overwrites.
    const [g, b, m] = model.layers[1].getWeights().map((w) => w.clone());
    model.layers[1].setWeights([g, b, m, tf.tensor1d([1, -1])]);
    await expect(foldBatchNormAsync(model)).rejects.toThrow(/-1 \(channel 1\)/);
    model.layers[1].setWeights([tf.tensor1d([Infinity, 1]), b, m, tf.tensor1d([1, 1])]);
    await expect(foldBatchNormAsync(model)).rejects.toThrow(
      "foldBatchNormAsync: expected every parameter of BatchNorm 'bad_bn' to be finite",
    );
    // Sound statistics: the async form gives what the sync form gives.
    model.layers[1].setWeights([g, b, m, tf.tensor1d([1, 2])]);
    const sync = foldBatchNorm(model);
    const async = await foldBatchNormAsync(model);
    expect(async.folded).toEqual(sync.folded);
    const x = randn([4, 3], 3);
    expect(maxAbsDiff(predict(async.model, x), predict(sync.model, x))).toBe(0);
  });

  it('the synchronous form reads nothing back: a NaN variance folds into NaN weights, as the BN computes NaN', () => {
    const model = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [3], units: 2 }), dn.batchNorm({ name: 'bad_bn' })],
    });
    const [g, b, m] = model.layers[1].getWeights();
    model.layers[1].setWeights([g, b, m, tf.tensor1d([1, NaN])]);
    const { model: folded } = foldBatchNorm(model);
    const x = randn([2, 3], 4);
    const want = Array.from(predict(model, x).dataSync()).map((v) => Number.isNaN(v));
    const got = Array.from(predict(folded, x).dataSync()).map((v) => Number.isNaN(v));
    expect(got).toEqual(want);
    expect(want).toEqual([false, true, false, true]);
  });

  it('rejects an unregistered layer class in the model and leaves the model untouched', () => {
    class Unregistered extends tf.layers.Layer {
      static className = 'UnregisteredScale';
      override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
        return tf.mul(Array.isArray(inputs) ? inputs[0] : inputs, 2);
      }
    }
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [3], units: 2 }),
        new Unregistered({}),
        tf.layers.batchNormalization(),
      ],
    });
    const before = snapshotWeights(model);
    expect(() => foldBatchNorm(model)).toThrow(
      /class of layer '.*' to be registered with tfjs.*UnregisteredScale/,
    );
    expect(snapshotWeights(model)).toEqual(before);
    expect(model.layers.length).toBe(3);
  });
});
