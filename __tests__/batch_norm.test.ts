import * as tf from '@tensorflow/tfjs';
import { BatchNorm, layers } from 'tfjs-dropnorm';
import { randomizeWeights, snapshot } from './batch_norm_helpers';
import { maxAbsDiff } from './helpers';

type LayerCtor = () => tf.layers.Layer;

/** y = γ(x−μ_B)/√(σ²_B+ε)+β computed directly with tf.moments and explicit broadcasting. */
function reference(
  x: tf.Tensor,
  axis: number,
  epsilon: number,
  gamma: tf.Tensor | null,
  beta: tf.Tensor | null,
  stats?: { mean: tf.Tensor; variance: tf.Tensor },
): tf.Tensor {
  return tf.tidy(() => {
    const ax = axis < 0 ? axis + x.rank : axis;
    const axes = [...Array(x.rank).keys()].filter((a) => a !== ax);
    const shape = x.shape.map((d, i) => (i === ax ? d : 1));
    const { mean, variance } = stats
      ? { mean: tf.reshape(stats.mean, shape), variance: tf.reshape(stats.variance, shape) }
      : tf.moments(x, axes, true);
    let y = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, epsilon)));
    if (gamma) y = tf.mul(y, tf.reshape(gamma, shape));
    if (beta) y = tf.add(y, tf.reshape(beta, shape));
    return y;
  });
}

function build(make: LayerCtor, shape: number[]): tf.layers.Layer {
  const layer = make();
  layer.build(shape);
  return layer;
}

describe('BatchNorm against tf.layers.batchNormalization (channels-last)', () => {
  const shapes: Array<[string, number[]]> = [
    ['rank 2', [8, 5]],
    ['rank 3', [4, 6, 5]],
    ['rank 4', [3, 4, 4, 5]],
  ];

  test.each(shapes)('training-mode output equals the built-in, %s', (_, shape) => {
    const x = tf.randomNormal(shape, 3, 2, 'float32', 11);
    const ours = build(() => layers.batchNorm(), shape);
    const builtin = build(() => tf.layers.batchNormalization(), shape);
    randomizeWeights(builtin, 5);
    ours.setWeights(builtin.getWeights());
    const a = ours.apply(x, { training: true }) as tf.Tensor;
    const b = builtin.apply(x, { training: true }) as tf.Tensor;
    expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(1e-5);
  });

  test.each(shapes)(
    'inference output equals the built-in given the same weights, %s',
    (_, shape) => {
      const x = tf.randomNormal(shape, 3, 2, 'float32', 12);
      const ours = build(() => layers.batchNorm(), shape);
      const builtin = build(() => tf.layers.batchNormalization(), shape);
      randomizeWeights(builtin, 6);
      ours.setWeights(builtin.getWeights());
      const a = ours.apply(x) as tf.Tensor;
      const b = builtin.apply(x) as tf.Tensor;
      expect(maxAbsDiff(a, b)).toBe(0);
    },
  );

  test.each([
    [false, true],
    [true, false],
    [false, false],
  ])(
    'center=%s scale=%s: training equals the direct formula; inference equals the built-in',
    (center, scale) => {
      const shape = [6, 4, 5];
      const x = tf.randomNormal(shape, -1, 3, 'float32', 13);
      const ours = build(() => layers.batchNorm({ center, scale }), shape);
      const builtin = build(() => tf.layers.batchNormalization({ center, scale }), shape);
      randomizeWeights(builtin, 7);
      ours.setWeights(builtin.getWeights());
      const named = (n: string) => {
        const i = ours.weights.findIndex((w) => w.originalName.endsWith(n));
        return i < 0 ? null : ours.getWeights()[i];
      };
      // Inference first: the training call below moves our moving statistics.
      const inf = ours.apply(x) as tf.Tensor;
      expect(maxAbsDiff(inf, builtin.apply(x) as tf.Tensor)).toBeLessThanOrEqual(1e-6);
      const train = ours.apply(x, { training: true }) as tf.Tensor;
      expect(
        maxAbsDiff(train, reference(x, -1, 1e-3, named('gamma'), named('beta'))),
      ).toBeLessThanOrEqual(1e-5);
      // The built-in cannot train without gamma or beta (it reads the missing weight).
      expect(() => builtin.apply(x, { training: true })).toThrow(/undefined/);
    },
  );

  test('gradients with respect to input, gamma and beta equal the built-in', () => {
    const shape = [4, 3, 3, 6];
    const x = tf.randomNormal(shape, 1, 2, 'float32', 21);
    const upstream = tf.randomNormal(shape, 0, 1, 'float32', 22);
    const ours = build(() => layers.batchNorm(), shape);
    const builtin = build(() => tf.layers.batchNormalization(), shape);
    randomizeWeights(builtin, 8);
    ours.setWeights(builtin.getWeights());
    const grads = (layer: tf.layers.Layer) => {
      const loss = (xx: tf.Tensor) =>
        tf.sum(tf.mul(layer.apply(xx, { training: true }) as tf.Tensor, upstream)) as tf.Scalar;
      const dx = tf.grad(loss)(x);
      // A LayerVariable's tf.Variable carries the same name, which keys variableGrads' result.
      const { grads: pg } = tf.variableGrads(() => loss(x));
      const [dGamma, dBeta] = layer.trainableWeights.map((w) => pg[w.name]);
      return { dx, dGamma, dBeta };
    };
    const a = grads(ours);
    const b = grads(builtin);
    expect(maxAbsDiff(a.dx, b.dx)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(a.dGamma, b.dGamma)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(a.dBeta, b.dBeta)).toBeLessThanOrEqual(1e-5);
    // Not vacuous: the gradients are non-zero.
    expect(tf.max(tf.abs(a.dx)).dataSync()[0]).toBeGreaterThan(1e-3);
  });
});

describe('BatchNorm channels-first (tfjs#1106)', () => {
  test.each([
    ['rank 3', [4, 3, 7]],
    ['rank 4', [2, 3, 4, 5]],
  ])('axis 1, %s: ours equals the direct reference in training and inference', (_, shape) => {
    const x = tf.randomNormal(shape, 2, 1.5, 'float32', 31);
    const ours = build(() => layers.batchNorm({ axis: 1 }), shape);
    randomizeWeights(ours, 9);
    const [gamma, beta, mean] = snapshot(ours);
    const train = ours.apply(x, { training: true }) as tf.Tensor;
    expect(maxAbsDiff(train, reference(x, 1, 1e-3, gamma, beta))).toBeLessThanOrEqual(1e-5);
    // Inference uses the moving statistics, which the training call above has just updated.
    const inf = ours.apply(x) as tf.Tensor;
    const now = snapshot(ours);
    expect(maxAbsDiff(now[2], mean)).toBeGreaterThan(1e-3);
    const expected = reference(x, 1, 1e-3, gamma, beta, { mean: now[2], variance: now[3] });
    expect(maxAbsDiff(inf, expected)).toBeLessThanOrEqual(1e-5);
  });

  test('records the built-in deviation on [2,3,4,5] with axis 1 (README claim)', () => {
    const shape = [2, 3, 4, 5];
    const x = tf.randomNormal(shape, 0, 1, 'float32', 32);
    const builtin = build(() => tf.layers.batchNormalization({ axis: 1 }), shape);
    randomizeWeights(builtin, 10);
    const [gamma, beta, mean, variance] = snapshot(builtin);
    const inf = builtin.apply(x) as tf.Tensor;
    const infErr = maxAbsDiff(inf, reference(x, 1, 1e-3, gamma, beta, { mean, variance }));
    const train = builtin.apply(x, { training: true }) as tf.Tensor;
    const trainErr = maxAbsDiff(train, reference(x, 1, 1e-3, gamma, beta));
    // The built-in applies per-channel parameters along the last axis: grossly wrong outputs.
    expect(infErr).toBeGreaterThan(0.1);
    expect(trainErr).toBeGreaterThan(0.1);
    // Its moving statistics are right, though.
    const after = snapshot(builtin);
    const { mean: bm } = tf.moments(x, [0, 2, 3]);
    const expectedMean = tf.add(tf.mul(mean, 0.99), tf.mul(bm, 0.01));
    expect(maxAbsDiff(after[2], expectedMean)).toBeLessThanOrEqual(1e-6);
  });
});

describe('BatchNorm running statistics', () => {
  test('worked example: x = [1, 2, 3, 4], momentum 0 → moving_variance 5/3 (built-in: 1.25)', () => {
    const x = tf.tensor2d([[1], [2], [3], [4]]);
    const ours = layers.batchNorm({ momentum: 0 });
    const builtin = tf.layers.batchNormalization({ momentum: 0 });
    ours.apply(x, { training: true });
    builtin.apply(x, { training: true });
    expect(ours.getWeights()[3].dataSync()[0]).toBeCloseTo(5 / 3, 6);
    expect(builtin.getWeights()[3].dataSync()[0]).toBeCloseTo(1.25, 6);
    expect(ours.getWeights()[2].dataSync()[0]).toBeCloseTo(2.5, 6);
  });

  test.each([
    ['unbiased', [8, 3], 8],
    ['unbiased', [4, 5, 5, 3], 100],
    ['biased', [4, 5, 5, 3], 100],
  ] as const)(
    '%s, input %j: moving stats follow the built-in step by step',
    (correction, shape, m) => {
      const momentum = 0.9;
      const ours = build(
        () => layers.batchNorm({ momentum, varianceCorrection: correction }),
        [...shape],
      );
      const builtin = build(() => tf.layers.batchNormalization({ momentum }), [...shape]);
      const factor = correction === 'unbiased' ? m / (m - 1) : 1;
      for (let step = 0; step < 4; step++) {
        const x = tf.randomNormal([...shape], step, 1 + step, 'float32', 40 + step);
        const [, , , oursVar0] = snapshot(ours);
        const [, , , builtinVar0] = snapshot(builtin);
        ours.apply(x, { training: true });
        builtin.apply(x, { training: true });
        const [, , oursMean, oursVar] = ours.getWeights();
        const [, , builtinMean, builtinVar] = builtin.getWeights();
        expect(maxAbsDiff(oursMean, builtinMean)).toBeLessThanOrEqual(1e-5);
        // The variance each fed into its average this step: (new − momentum·old)/(1 − momentum).
        const fed = (now: tf.Tensor, old: tf.Tensor) =>
          tf.div(tf.sub(now, tf.mul(old, momentum)), 1 - momentum);
        const oursFed = fed(oursVar, oursVar0);
        const builtinFed = fed(builtinVar, builtinVar0);
        expect(maxAbsDiff(oursFed, tf.mul(builtinFed, factor))).toBeLessThanOrEqual(1e-4);
      }
    },
  );

  test('cumulative mode (momentum null): exact average of k batch means and unbiased variances', () => {
    const shape = [6, 4];
    const ours = build(() => layers.batchNorm({ momentum: null }), shape);
    const means: tf.Tensor[] = [];
    const vars: tf.Tensor[] = [];
    const k = 5;
    for (let i = 0; i < k; i++) {
      const x = tf.randomNormal(shape, i * 2, 1 + i, 'float32', 50 + i);
      const { mean, variance } = tf.moments(x, 0);
      means.push(mean);
      vars.push(tf.mul(variance, 6 / 5));
      ours.apply(x, { training: true });
    }
    const w = ours.getWeights();
    expect(w.length).toBe(5);
    expect(ours.weights[4].originalName).toMatch(/num_batches_tracked$/);
    expect(w[4].dataSync()[0]).toBe(k);
    expect(maxAbsDiff(w[2], tf.mean(tf.stack(means), 0))).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(w[3], tf.mean(tf.stack(vars), 0))).toBeLessThanOrEqual(1e-4);
  });

  test('numerics: mean 1e4, std 1 gives the float64 batch variance within 1e-3 relative', () => {
    const n = 4096;
    const x = tf.add(tf.randomNormal([n, 2], 0, 1, 'float32', 60), 1e4);
    const values = x.dataSync();
    const ref = [0, 1].map((c) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += values[i * 2 + c];
      const mu = s / n;
      let ss = 0;
      for (let i = 0; i < n; i++) ss += (values[i * 2 + c] - mu) ** 2;
      return ss / n;
    });
    const ours = layers.batchNorm({ momentum: 0, varianceCorrection: 'biased' });
    ours.apply(x, { training: true });
    const got = ours.getWeights()[3].dataSync();
    for (let c = 0; c < 2; c++) expect(Math.abs(got[c] - ref[c]) / ref[c]).toBeLessThan(1e-3);
  });
});

describe('BatchNorm weights and serialization', () => {
  test('weights use the built-in order and names; setWeights works both ways', () => {
    const shape = [4, 3];
    const ours = build(() => layers.batchNorm(), shape);
    const builtin = build(() => tf.layers.batchNormalization(), shape);
    const names = (l: tf.layers.Layer) => l.weights.map((w) => w.originalName.split('/').pop());
    expect(names(ours)).toEqual(['gamma', 'beta', 'moving_mean', 'moving_variance']);
    expect(names(ours)).toEqual(names(builtin));
    randomizeWeights(builtin, 70);
    ours.setWeights(builtin.getWeights());
    ours.getWeights().forEach((w, i) => expect(maxAbsDiff(w, builtin.getWeights()[i])).toBe(0));
    randomizeWeights(ours, 71);
    builtin.setWeights(ours.getWeights());
    ours.getWeights().forEach((w, i) => expect(maxAbsDiff(w, builtin.getWeights()[i])).toBe(0));
  });

  test('className collides with no built-in and the built-in BatchNormalization still loads as itself', async () => {
    expect(BatchNorm.className).not.toBe('BatchNormalization');
    const model = tf.sequential({
      layers: [tf.layers.batchNormalization({ inputShape: [3] })],
    });
    let saved: tf.io.ModelArtifacts | undefined;
    await model.save(
      tf.io.withSaveHandler(
        async (a) => (
          (saved = a),
          { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }
        ),
      ),
    );
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved!));
    expect(loaded.layers[0].getClassName()).toBe('BatchNormalization');
    expect(loaded.layers[0]).not.toBeInstanceOf(BatchNorm);
    const map = tf.serialization.SerializationMap.getMap().classNameMap;
    expect(map['BatchNormalization'][0]).not.toBe(BatchNorm);
    expect(map[BatchNorm.className][0]).toBe(BatchNorm);
  });

  test('getConfig round-trips every argument', () => {
    const layer = layers.batchNorm({
      axis: 1,
      momentum: null,
      epsilon: 1e-4,
      center: false,
      scale: true,
      varianceCorrection: 'biased',
      gammaInitializer: 'randomNormal',
      gammaRegularizer: 'l1l2',
      gammaConstraint: 'nonNeg',
    });
    const config = layer.getConfig();
    const copy = BatchNorm.fromConfig(BatchNorm, config) as BatchNorm;
    expect(copy.getConfig()).toEqual(config);
    expect(config).toMatchObject({
      axis: 1,
      momentum: null,
      epsilon: 1e-4,
      center: false,
      varianceCorrection: 'biased',
    });
  });
});

describe('BatchNorm validation: errors name the layer, the argument and the value', () => {
  test.each([
    [
      { momentum: 1 },
      /BatchNorm '.*': expected momentum in \[0, 1\) or null, received: momentum=1\./,
    ],
    [{ momentum: -0.1 }, /received: momentum=-0\.1/],
    [{ epsilon: 0 }, /expected epsilon to be a finite number > 0, received: epsilon=0/],
    [{ epsilon: -1e-3 }, /received: epsilon=-0\.001/],
    [
      { varianceCorrection: 'bessel' },
      /expected varianceCorrection .*received: varianceCorrection="bessel"/,
    ],
    [{ axis: 1.5 }, /expected axis to be an integer, received: axis=1\.5/],
  ])('constructor %j', (args, message) => {
    expect(() => layers.batchNorm(args as never)).toThrow(message);
  });

  test('axis out of range for the input rank', () => {
    const layer = layers.batchNorm({ axis: 3, name: 'bn_axis' });
    expect(() => layer.build([4, 5])).toThrow(
      /BatchNorm 'bn_axis': expected axis in \[-2, 2\) for an input of rank 2 .*received: axis=3/,
    );
  });

  test('undefined channel dimension', () => {
    const layer = layers.batchNorm({ name: 'bn_dim' });
    expect(() => layer.build([null, 4, null])).toThrow(
      /BatchNorm 'bn_dim': .*channel dimension.*received: .*=null/,
    );
  });
});
