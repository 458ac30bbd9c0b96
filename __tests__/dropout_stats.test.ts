// The dropout family as specifications: inference behaviour, rate 0, dropped fractions (binomial
// bounds), what is dropped together (channels, blocks, samples) and the preserved expectation.
import * as tf from '@tensorflow/tfjs';
import { DataFormat, layers, ops } from 'tfjs-dropnorm';
import { maxAbsDiff } from './helpers';

type Make = () => tf.layers.Layer;

function train(layer: tf.layers.Layer, x: tf.Tensor): tf.Tensor {
  return layer.apply(x, { training: true }) as tf.Tensor;
}

/** Fraction of exact zeros. */
function zeroFraction(y: tf.Tensor): number {
  return tf.tidy(() => tf.mean(tf.cast(tf.equal(y, 0), 'float32')).dataSync()[0]);
}

/** |observed − p| ≤ 4·sqrt(p(1−p)/n), the 4-sigma binomial bound. */
function expectWithinBinomial(observed: number, p: number, n: number): void {
  expect(n).toBeGreaterThanOrEqual(1e5);
  expect(Math.abs(observed - p)).toBeLessThanOrEqual(4 * Math.sqrt((p * (1 - p)) / n));
}

// Every layer of the family, at rate 0.3 where that applies.
const ALL: [string, Make, number[]][] = [
  ['dropout', () => layers.dropout({ rate: 0.3 }), [8, 16]],
  ['spatialDropout1d', () => layers.spatialDropout1d({ rate: 0.3 }), [4, 5, 6]],
  ['spatialDropout2d', () => layers.spatialDropout2d({ rate: 0.3 }), [4, 5, 5, 6]],
  ['spatialDropout3d', () => layers.spatialDropout3d({ rate: 0.3 }), [2, 3, 4, 4, 6]],
  ['gaussianDropout', () => layers.gaussianDropout({ rate: 0.3 }), [8, 16]],
  ['alphaDropout', () => layers.alphaDropout({ rate: 0.3 }), [8, 16]],
  ['dropBlock2d', () => layers.dropBlock2d({ rate: 0.3, blockSize: 3 }), [4, 8, 8, 2]],
  ['dropPath', () => layers.dropPath({ rate: 0.3 }), [8, 16]],
];

describe('inference', () => {
  test.each(ALL)(
    '%s is the identity at inference (training false or absent)',
    (_n, make, shape) => {
      const x = tf.randomNormal(shape, 0, 1, 'float32', 1);
      const layer = make();
      for (const kwargs of [{}, { training: false }]) {
        const y = layer.apply(x, kwargs) as tf.Tensor;
        expect(maxAbsDiff(y, x)).toBe(0);
        y.dispose();
      }
      x.dispose();
    },
  );

  test('classic dropout is exactly x·(1−rate) at inference and unscaled in training', () => {
    const x = tf.randomNormal([64, 64], 0, 1, 'float32', 2);
    const rate = 0.3;
    const layer = layers.dropout({ rate, mode: 'classic', seed: 4 });
    const y = layer.apply(x) as tf.Tensor;
    const expected = tf.mul(x, 1 - rate);
    expect(maxAbsDiff(y, expected)).toBe(0);
    // Training: kept units are x itself (no 1/(1−rate)), dropped ones 0.
    const yt = train(layer, x);
    const bad = tf.tidy(
      () => tf.sum(tf.logicalAnd(tf.notEqual(yt, 0), tf.notEqual(yt, x))).dataSync()[0] as number,
    );
    expect(bad).toBe(0);
    expect(zeroFraction(yt)).toBeGreaterThan(0.2);
    tf.dispose([x, y, expected, yt]);
  });

  test('dropConnectDense at inference is tf.layers.dense with the same weights', () => {
    const x = tf.randomNormal([5, 7], 0, 1, 'float32', 3);
    const ours = layers.dropConnectDense({ units: 4, rate: 0.5, activation: 'relu' });
    const dense = tf.layers.dense({ units: 4, activation: 'relu' });
    ours.apply(x);
    dense.apply(x);
    dense.setWeights(ours.getWeights());
    const y = ours.apply(x) as tf.Tensor;
    const yd = dense.apply(x) as tf.Tensor;
    expect(maxAbsDiff(y, yd)).toBe(0);
    tf.dispose([x, y, yd]);
  });
});

describe('rate 0', () => {
  const ZERO: [string, Make, number[]][] = [
    ['dropout', () => layers.dropout({ rate: 0 }), [8, 16]],
    ['dropout classic', () => layers.dropout({ rate: 0, mode: 'classic' }), [8, 16]],
    ['spatialDropout2d', () => layers.spatialDropout2d({ rate: 0 }), [4, 5, 5, 6]],
    ['gaussianDropout', () => layers.gaussianDropout({ rate: 0 }), [8, 16]],
    ['alphaDropout', () => layers.alphaDropout({ rate: 0 }), [8, 16]],
    ['dropBlock2d', () => layers.dropBlock2d({ rate: 0, blockSize: 3 }), [4, 8, 8, 2]],
    ['dropPath', () => layers.dropPath({ rate: 0 }), [8, 16]],
  ];
  test.each(ZERO)('%s with rate 0 is the identity in training', (_n, make, shape) => {
    const x = tf.randomNormal(shape, 0, 1, 'float32', 5);
    const y = train(make(), x);
    expect(maxAbsDiff(y, x)).toBe(0);
    tf.dispose([x, y]);
  });

  test('dropConnectDense with rate 0 trains as a plain dense layer', () => {
    const x = tf.randomNormal([5, 7], 0, 1, 'float32', 6);
    const layer = layers.dropConnectDense({ units: 3, rate: 0 });
    const yi = layer.apply(x) as tf.Tensor;
    const yt = train(layer, x);
    expect(maxAbsDiff(yt, yi)).toBe(0);
    tf.dispose([x, yi, yt]);
  });
});

describe('dropped fraction (4-sigma binomial bound over ≥ 1e5 draws)', () => {
  test.each([0.1, 0.3, 0.5])('dropout, inverted and classic, rate %p', (rate) => {
    const x = tf.ones([400, 256]);
    for (const mode of ['inverted', 'classic'] as const) {
      const y = train(layers.dropout({ rate, mode, seed: 10 + rate }), x);
      expectWithinBinomial(zeroFraction(y), rate, y.size);
      // Kept units carry the mode's scale.
      const kept = tf.tidy(() => tf.max(y).dataSync()[0]);
      expect(kept).toBeCloseTo(mode === 'inverted' ? 1 / (1 - rate) : 1, 6);
      y.dispose();
    }
    x.dispose();
  });

  test('dropout with noiseShape [null, 1]: one draw per row, shared along the row', () => {
    const x = tf.ones([100000, 3]);
    const y = train(layers.dropout({ rate: 0.2, noiseShape: [null, 1], seed: 12 }), x);
    const rowsSpread = tf.tidy(() => tf.max(tf.sub(tf.max(y, 1), tf.min(y, 1))).dataSync()[0]);
    expect(rowsSpread).toBe(0);
    expectWithinBinomial(zeroFraction(y), 0.2, 100000);
    tf.dispose([x, y]);
  });

  test('alphaDropout: the fraction of units set to a·α′ + b', () => {
    const rate = 0.2;
    const x = tf.ones([400, 256]);
    const { alphaPrime, a, b } = ops.alphaDropoutParams(rate);
    const y = train(layers.alphaDropout({ rate, seed: 13 }), x);
    const dropped = tf.tidy(
      () =>
        tf
          .mean(tf.cast(tf.less(tf.abs(tf.sub(y, a * alphaPrime + b)), 1e-5), 'float32'))
          .dataSync()[0],
    );
    expectWithinBinomial(dropped, rate, y.size);
    tf.dispose([x, y]);
  });

  test('dropConnectDense: the fraction of dropped kernel entries', () => {
    // Identity input and an all-ones kernel expose the scaled mask: y = I·(1 ⊙ M)/(1−p) = M/(1−p).
    const rate = 0.25;
    const n = 320;
    const layer = layers.dropConnectDense({ units: n, rate, kernelInitializer: 'ones', seed: 14 });
    const eye = tf.eye(n);
    const y = train(layer, eye);
    expectWithinBinomial(zeroFraction(y), rate, n * n);
    const kept = tf.tidy(() => tf.max(y).dataSync()[0]);
    expect(kept).toBeCloseTo(1 / (1 - rate), 5);
    tf.dispose([eye, y]);
  });

  test('dropPath: the fraction of dropped samples', () => {
    const x = tf.ones([100000, 2]);
    const y = train(layers.dropPath({ rate: 0.4, seed: 15 }), x);
    expectWithinBinomial(zeroFraction(y), 0.4, 100000);
    tf.dispose([x, y]);
  });
});

describe('spatial dropout drops whole channels', () => {
  const CASES: [string, Make, number[], DataFormat][] = [
    [
      '1d channelsLast',
      () => layers.spatialDropout1d({ rate: 0.3, seed: 20 }),
      [1000, 2, 100],
      'channelsLast',
    ],
    [
      '1d channelsFirst',
      () => layers.spatialDropout1d({ rate: 0.3, seed: 21, dataFormat: 'channelsFirst' }),
      [1000, 100, 2],
      'channelsFirst',
    ],
    [
      '2d channelsLast',
      () => layers.spatialDropout2d({ rate: 0.3, seed: 22 }),
      [500, 1, 2, 200],
      'channelsLast',
    ],
    [
      '2d channelsFirst',
      () => layers.spatialDropout2d({ rate: 0.3, seed: 23, dataFormat: 'channelsFirst' }),
      [500, 200, 2, 1],
      'channelsFirst',
    ],
    [
      '3d channelsLast',
      () => layers.spatialDropout3d({ rate: 0.3, seed: 24 }),
      [250, 1, 1, 2, 400],
      'channelsLast',
    ],
    [
      '3d channelsFirst',
      () => layers.spatialDropout3d({ rate: 0.3, seed: 25, dataFormat: 'channelsFirst' }),
      [250, 400, 2, 1, 1],
      'channelsFirst',
    ],
  ];
  test.each(CASES)('%s', (_n, make, shape, dataFormat) => {
    const x = tf.ones(shape);
    const y = train(make(), x);
    const rank = shape.length;
    const spatialAxes =
      dataFormat === 'channelsFirst' ? [2, 3, 4].slice(0, rank - 2) : [1, 2, 3].slice(0, rank - 2);
    const [spread, channelZeros] = tf.tidy(() => {
      const hi = tf.max(y, spatialAxes);
      const lo = tf.min(y, spatialAxes);
      return [
        tf.max(tf.sub(hi, lo)).dataSync()[0],
        tf.mean(tf.cast(tf.equal(hi, 0), 'float32')).dataSync()[0],
      ];
    });
    // Every channel of every sample is all zero or all 1/(1−p).
    expect(spread).toBe(0);
    const channels = shape[0] * (dataFormat === 'channelsFirst' ? shape[1] : shape[rank - 1]);
    expectWithinBinomial(channelZeros, 0.3, channels);
    tf.dispose([x, y]);
  });
});

describe('DropBlock', () => {
  /** Morphological opening with a b×b square: the union of b×b squares inside the map within D. */
  function opening(dropped: tf.Tensor4D, b: number): tf.Tensor {
    return tf.tidy(() => {
      const eroded = tf.neg(tf.maxPool(tf.neg(dropped), b, 1, 'valid'));
      const padded = tf.pad(eroded, [
        [0, 0],
        [b - 1, b - 1],
        [b - 1, b - 1],
        [0, 0],
      ]);
      return tf.maxPool(padded, b, 1, 'valid');
    });
  }

  test.each(['channelsLast', 'channelsFirst'] as const)(
    '%s: fraction within 10%% of rate on 32×32 with blockSize 5, dropped regions are whole blocks',
    (dataFormat) => {
      const rate = 0.1;
      const b = 5;
      const shape = dataFormat === 'channelsLast' ? [32, 32, 32, 4] : [32, 4, 32, 32];
      const x = tf.ones(shape);
      const y = train(layers.dropBlock2d({ rate, blockSize: b, dataFormat, seed: 30 }), x);
      const fraction = zeroFraction(y);
      expect(Math.abs(fraction - rate) / rate).toBeLessThan(0.1);
      // The exact expectation, overlaps and borders included: mean of 1 − (1−γ)^(n_i·n_j), where
      // n_i counts the block seeds covering row i.
      const gamma = ops.dropBlockGamma(rate, b, 32, 32);
      const cover = Array.from({ length: 32 }, (_, i) => Math.min(i + 1, b, 32 - i, 32 - b + 1));
      let expected = 0;
      for (const ni of cover) for (const nj of cover) expected += 1 - (1 - gamma) ** (ni * nj);
      expected /= 32 * 32;
      expect(Math.abs(fraction - expected)).toBeLessThan(0.005);
      const dropped = tf.tidy(() => {
        const d = tf.cast(tf.equal(y, 0), 'float32');
        return (dataFormat === 'channelsFirst' ? tf.transpose(d, [0, 2, 3, 1]) : d) as tf.Tensor4D;
      });
      const opened = opening(dropped, b);
      expect(maxAbsDiff(opened, dropped)).toBe(0);
      // A Bernoulli mask of the same rate is not made of blocks: the check can fail.
      const bernoulli = tf.tidy(() =>
        tf.cast(tf.less(tf.randomUniform([4, 32, 32, 1], 0, 1, 'float32', 31), rate), 'float32'),
      ) as tf.Tensor4D;
      const openedBernoulli = opening(bernoulli, b);
      expect(maxAbsDiff(openedBernoulli, bernoulli)).toBe(1);
      tf.dispose([x, y, dropped, opened, bernoulli, openedBernoulli]);
    },
  );

  test('kept units are renormalized by count/kept-count, so the sum of a constant map is preserved', () => {
    const x = tf.fill([8, 16, 16, 3], 2.5);
    const layer = layers.dropBlock2d({ rate: 0.2, blockSize: 3, seed: 32 });
    for (let i = 0; i < 5; i++) {
      const y = train(layer, x);
      const [sum, kept, maxValue] = tf.tidy(() => [
        tf.sum(y).dataSync()[0],
        tf.sum(tf.cast(tf.notEqual(y, 0), 'float32')).dataSync()[0],
        tf.max(y).dataSync()[0],
      ]);
      expect(sum / x.size / 2.5).toBeCloseTo(1, 4);
      expect(maxValue).toBeCloseTo((2.5 * x.size) / kept, 3);
      y.dispose();
    }
    x.dispose();
  });
});

describe('DropPath drops whole samples', () => {
  test('each sample is all zero or all x/(1−p)', () => {
    const rate = 0.5;
    const x = tf.randomNormal([256, 4, 4, 3], 0, 1, 'float32', 40);
    const y = train(layers.dropPath({ rate, seed: 41 }), x);
    const [maxAbs, scaledErr, dropped] = tf.tidy(() => {
      const isDropped = tf.equal(tf.max(tf.abs(y), [1, 2, 3]), 0);
      const scaled = tf.sub(y, tf.div(x, 1 - rate));
      const keptErr = tf.max(tf.abs(scaled), [1, 2, 3]);
      return [
        tf.max(tf.abs(y)).dataSync()[0],
        tf.max(tf.where(isDropped, tf.zerosLike(keptErr), keptErr)).dataSync()[0],
        tf.sum(tf.cast(isDropped, 'float32')).dataSync()[0],
      ];
    });
    expect(maxAbs).toBeGreaterThan(0);
    expect(scaledErr).toBeLessThan(1e-5);
    expect(dropped).toBeGreaterThan(80);
    expect(dropped).toBeLessThan(176);
    tf.dispose([x, y]);
  });
});

describe('expectation preserved: mean over many draws equals the input', () => {
  // x is one row tiled n times: each row is an independent draw, the column mean estimates E[y].
  // Tolerance: 5 standard errors of the mean, |x|·sqrt(p/(1−p)/n) (the multiplier's variance).
  const n = 4000;
  const CASES: [string, Make, number[]][] = [
    ['dropout', () => layers.dropout({ rate: 0.4, seed: 50 }), [n, 32]],
    ['spatialDropout1d', () => layers.spatialDropout1d({ rate: 0.4, seed: 51 }), [n, 2, 16]],
    ['spatialDropout2d', () => layers.spatialDropout2d({ rate: 0.4, seed: 52 }), [n, 2, 2, 8]],
    ['spatialDropout3d', () => layers.spatialDropout3d({ rate: 0.4, seed: 53 }), [n, 2, 2, 2, 4]],
    ['gaussianDropout', () => layers.gaussianDropout({ rate: 0.4, seed: 54 }), [n, 32]],
    ['dropPath', () => layers.dropPath({ rate: 0.4, seed: 55 }), [n, 32]],
  ];
  test.each(CASES)('%s', (_n, make, shape) => {
    const rate = 0.4;
    const row = tf.randomNormal([1, ...shape.slice(1)], 0, 1, 'float32', 56);
    const x = tf.tile(row, [n, ...shape.slice(1).map(() => 1)]);
    const y = train(make(), x);
    const [err, changed] = tf.tidy(() => {
      const mean = tf.mean(y, 0, true);
      const tol = tf.mul(tf.abs(row), 5 * Math.sqrt(rate / (1 - rate) / n));
      return [
        tf.max(tf.sub(tf.abs(tf.sub(mean, row)), tol)).dataSync()[0],
        tf.mean(tf.cast(tf.notEqual(y, x), 'float32')).dataSync()[0],
      ];
    });
    expect(err).toBeLessThanOrEqual(0);
    expect(changed).toBeGreaterThan(0.3);
    tf.dispose([row, x, y]);
  });

  test('dropConnectDense: E[x·(W ⊙ M)/(1−p) + b] = x·W + b', () => {
    const rate = 0.4;
    const draws = 400;
    const x = tf.randomNormal([3, 16], 0, 1, 'float32', 57);
    const layer = layers.dropConnectDense({ units: 8, rate, seed: 58, biasInitializer: 'ones' });
    const plain = layer.apply(x) as tf.Tensor;
    const sum = tf.tidy(() => {
      let acc = tf.zerosLike(plain);
      for (let i = 0; i < draws; i++) acc = tf.add(acc, train(layer, x));
      return acc;
    });
    const [kernel] = layer.getWeights();
    const err = tf.tidy(() => {
      const mean = tf.div(sum, draws);
      // Var of one draw: p/(1−p) Σ_i x_i² W_ij²; 5 standard errors of the mean of `draws` draws.
      const variance = tf.mul(tf.matMul(tf.square(x), tf.square(kernel)), rate / (1 - rate));
      const tol = tf.mul(tf.sqrt(tf.div(variance, draws)), 5);
      return tf.max(tf.sub(tf.abs(tf.sub(mean, plain)), tol)).dataSync()[0];
    });
    expect(err).toBeLessThanOrEqual(0);
    tf.dispose([x, plain, sum]);
  });

  test('dropBlock2d: the mean activation is preserved (renormalization by the kept fraction)', () => {
    // Per position DropBlock is not unbiased (border units are covered by fewer block seeds);
    // what the paper's renormalization preserves is the total, here over draws of a random input.
    const x = tf.randomUniform([256, 16, 16, 2], 0, 1, 'float32', 59);
    const layer = layers.dropBlock2d({ rate: 0.3, blockSize: 3, seed: 60 });
    const [mx, my] = tf.tidy(() => {
      const y = train(layer, x);
      return [tf.mean(x).dataSync()[0], tf.mean(y).dataSync()[0]];
    });
    expect(Math.abs(my - mx) / mx).toBeLessThan(0.01);
    x.dispose();
  });
});
