import * as tf from '@tensorflow/tfjs';
import { ClipOptimizer, clipOptimizer, DropnormValueError } from 'tfjs-dropnorm';
import { leakedTensors } from './helpers';

// Hand-computed example: g1 = [3, 4] (‖g1‖ = 5), g2 = [12] (‖g2‖ = 12), global norm √(25+144) = 13.
function setup() {
  const v1 = tf.variable(tf.tensor1d([1, 1]), true, 'clip_test_v1_' + Math.random());
  const v2 = tf.variable(tf.tensor1d([1]), true, 'clip_test_v2_' + Math.random());
  const grads = { [v1.name]: tf.tensor1d([3, 4]), [v2.name]: tf.tensor1d([12]) };
  return { v1, v2, grads };
}

/** One SGD(lr = 1) step through the wrapper; returns the applied update w_before − w_after. */
function appliedUpdate(options: Parameters<typeof clipOptimizer>[1], g1 = [3, 4], g2 = [12]) {
  const { v1, v2 } = setup();
  const optimizer = clipOptimizer(tf.train.sgd(1), options);
  optimizer.applyGradients({ [v1.name]: tf.tensor1d(g1), [v2.name]: tf.tensor1d(g2) });
  const update = [
    ...Array.from(v1.dataSync()).map((w) => 1 - w),
    ...Array.from(v2.dataSync()).map((w) => 1 - w),
  ];
  return update;
}

function expectClose(actual: number[], expected: number[]) {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((a, i) => expect(a).toBeCloseTo(expected[i], 5));
}

describe('clipOptimizer: each mode applies exactly the Keras-clipped gradient', () => {
  it('clipNorm: per variable g·c/max(‖g‖, c)', () => {
    expectClose(appliedUpdate({ clipNorm: 1 }), [0.6, 0.8, 1]); // [3,4]/5, 12/12
    expectClose(appliedUpdate({ clipNorm: 10 }), [3, 4, 10]); // ‖g1‖ = 5 < 10 untouched
  });

  it('globalClipNorm: g·c/max(‖g‖_global, c)', () => {
    expectClose(appliedUpdate({ globalClipNorm: 6.5 }), [1.5, 2, 6]); // × 6.5/13
    expectClose(appliedUpdate({ globalClipNorm: 20 }), [3, 4, 12]); // 13 < 20 untouched
  });

  it('clipValue: elementwise clip to [−c, c]', () => {
    expectClose(appliedUpdate({ clipValue: 3.5 }), [3, 3.5, 3.5]);
    expectClose(appliedUpdate({ clipValue: 3.5 }, [-5, 1], [-2]), [-3.5, 1, -2]);
  });

  it('no clip option: the gradient is applied unchanged', () => {
    expectClose(appliedUpdate({}), [3, 4, 12]);
  });

  it('accepts NamedTensor[] as well as a map, and leaks no tensor', async () => {
    const { v1, v2 } = setup();
    const optimizer = clipOptimizer(tf.train.sgd(1), { globalClipNorm: 6.5 });
    const g1 = tf.tensor1d([3, 4]);
    const g2 = tf.tensor1d([12]);
    const leaked = await leakedTensors(() =>
      optimizer.applyGradients([
        { name: v1.name, tensor: g1 },
        { name: v2.name, tensor: g2 },
      ]),
    );
    expect(leaked).toBe(0);
    expect(g1.isDisposed).toBe(false); // the caller's gradients are left alone
    expectClose(Array.from(v1.dataSync()), [1 - 1.5, 1 - 2]);
  });
});

describe('clipOptimizer inside model.fit', () => {
  it('weights after one step equal a manual SGD step on the clipped gradient', async () => {
    const model = tf.sequential({
      layers: [tf.layers.dense({ units: 2, inputShape: [3], activation: 'tanh' })],
    });
    model.setWeights([tf.tensor2d([1, -2, 0.5, 3, -1, 2], [3, 2]), tf.tensor1d([0.1, -0.2])]);
    const x = tf.tensor2d([1, 2, 3, -1, 0, 4], [2, 3]);
    const y = tf.tensor2d([5, -5, -5, 5], [2, 2]);
    const lr = 0.1;
    const c = 0.5;
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const { value, grads } = tf.variableGrads(
      () => tf.mean(tf.metrics.meanSquaredError(y, model.apply(x) as tf.Tensor)) as tf.Scalar,
      vars,
    );
    value.dispose();
    const raw = vars.map((v) => Array.from(grads[v.name].dataSync()));
    const global = Math.sqrt(raw.flat().reduce((s, g) => s + g * g, 0));
    expect(global).toBeGreaterThan(c); // so the clip is active
    const before = model.getWeights().map((w) => Array.from(w.dataSync()));
    const expected = before.map((w, i) => w.map((wj, j) => wj - (lr * raw[i][j] * c) / global));

    model.compile({
      optimizer: clipOptimizer(tf.train.sgd(lr), { globalClipNorm: c }),
      loss: 'meanSquaredError',
    });
    await model.fit(x, y, { epochs: 1, batchSize: 2, shuffle: false, verbose: 0 });
    model.getWeights().forEach((w, i) => expectClose(Array.from(w.dataSync()), expected[i]));
  });
});

describe('clipOptimizer: non-finite gradients', () => {
  it('throws by default, naming the variable, and changes no weight', () => {
    const { v1, v2 } = setup();
    const optimizer = clipOptimizer(tf.train.sgd(1), { clipNorm: 1 });
    expect(() =>
      optimizer.applyGradients({ [v1.name]: tf.tensor1d([NaN, 1]), [v2.name]: tf.tensor1d([1]) }),
    ).toThrow(DropnormValueError);
    expect(() =>
      optimizer.applyGradients({
        [v1.name]: tf.tensor1d([1, 1]),
        [v2.name]: tf.tensor1d([Infinity]),
      }),
    ).toThrow(
      new RegExp(`non-finite gradient .* in ${v2.name} \\(1 of 1\\); no weight was changed`),
    );
    expect(Array.from(v1.dataSync())).toEqual([1, 1]);
    expect(Array.from(v2.dataSync())).toEqual([1]);
  });

  it("'skip' leaves weights and the optimizer's step count unchanged and counts the skip", () => {
    const { v1, v2 } = setup();
    const optimizer = clipOptimizer(tf.train.adam(0.1), { nonFinite: 'skip' });
    optimizer.applyGradients({ [v1.name]: tf.tensor1d([NaN, 1]), [v2.name]: tf.tensor1d([1]) });
    expect(Array.from(v1.dataSync())).toEqual([1, 1]);
    expect(optimizer.skippedSteps).toBe(1);
    expect(optimizer.iterations).toBe(0);
    optimizer.applyGradients({ [v1.name]: tf.tensor1d([1, 1]), [v2.name]: tf.tensor1d([1]) });
    expect(optimizer.iterations).toBe(1);
    expect(v1.dataSync()[0]).toBeLessThan(1);
  });
});

describe('clipOptimizer: serialization', () => {
  it('model.save with includeOptimizer round-trips the wrapper, the wrapped optimizer and its state', async () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
    model.compile({
      optimizer: clipOptimizer(tf.train.adam(0.01), { clipNorm: 0.5, nonFinite: 'skip' }),
      loss: 'meanSquaredError',
    });
    await model.fit(tf.ones([4, 2]), tf.zeros([4, 1]), { epochs: 2, verbose: 0 });
    let artifacts: tf.io.ModelArtifacts | undefined;
    await model.save(
      tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
      { includeOptimizer: true },
    );
    expect(artifacts?.trainingConfig?.optimizer_config).toEqual({
      class_name: 'DropnormClipOptimizer',
      config: {
        optimizer: {
          className: 'Adam',
          config: { learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: expect.any(Number) },
        },
        clipNorm: 0.5,
        nonFinite: 'skip',
      },
    });
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts as tf.io.ModelArtifacts));
    const optimizer = loaded.optimizer as ClipOptimizer;
    expect(optimizer).toBeInstanceOf(ClipOptimizer);
    expect(optimizer.options).toEqual({ clipNorm: 0.5, nonFinite: 'skip' });
    expect(optimizer.optimizer.getClassName()).toBe('Adam');
    expect(optimizer.optimizer.getConfig()).toEqual(
      (model.optimizer as ClipOptimizer).optimizer.getConfig(),
    );
    const original = await model.optimizer.getWeights();
    const restored = await optimizer.getWeights();
    expect(restored.map((w) => w.name)).toEqual(original.map((w) => w.name));
    restored.forEach((w, i) =>
      expect(Array.from(w.tensor.dataSync())).toEqual(Array.from(original[i].tensor.dataSync())),
    );
    expect(optimizer.iterations).toBe(2);
  });
});

describe('clipOptimizer: arguments', () => {
  it('rejects more than one mode, non-positive values, and non-optimizers', () => {
    const sgd = tf.train.sgd(1);
    expect(() => clipOptimizer(sgd, { clipNorm: 1, globalClipNorm: 1 } as never)).toThrow(
      /clipOptimizer: expected options to set at most one of clipNorm, clipValue, globalClipNorm, received: options=\{"clipNorm":1,"globalClipNorm":1\}/,
    );
    expect(() => clipOptimizer(sgd, { clipValue: 0 })).toThrow(
      /expected clipValue to be a finite number > 0, received: clipValue=0/,
    );
    expect(() => clipOptimizer('adam' as never)).toThrow(/expected optimizer to be a tf.Optimizer/);
    expect(() => clipOptimizer(sgd, { nonFinite: 'ignore' as never })).toThrow(
      /received: nonFinite="ignore"/,
    );
  });
});
