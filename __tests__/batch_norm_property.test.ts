import * as fc from 'fast-check';
import * as tf from '@tensorflow/tfjs';
import { layers } from 'tfjs-dropnorm';

/**
 * Property: for any rank 2–5 shape, channel axis, momentum, epsilon and center/scale setting, the
 * training output, the inference output and the updated moving statistics equal a direct
 * float64 computation of the BN formulas (Ioffe & Szegedy 2015, Alg. 1 and 2).
 */
describe('BatchNorm property: equals a direct float64 reference', () => {
  test('random shapes, axes, momentum, epsilon, center/scale', () => {
    const config = fc
      .integer({ min: 2, max: 5 })
      .chain((rank) =>
        fc.record({
          shape: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: rank, maxLength: rank }),
          axisIndex: fc.integer({ min: 0, max: rank - 1 }),
          negativeAxis: fc.boolean(),
          momentum: fc.oneof(fc.constant(null), fc.double({ min: 0, max: 0.99, noNaN: true })),
          epsilon: fc.double({ min: 1e-5, max: 0.1, noNaN: true }),
          center: fc.boolean(),
          scale: fc.boolean(),
          correction: fc.constantFrom('unbiased' as const, 'biased' as const),
          seed: fc.integer({ min: 0, max: 1e6 }),
        }),
      )
      // At least 2 elements per channel, so both corrections are defined.
      .filter(({ shape, axisIndex }) => shape.reduce((a, b) => a * b, 1) / shape[axisIndex] >= 2);

    fc.assert(
      fc.property(config, (c) => {
        const rank = c.shape.length;
        const axis = c.negativeAxis ? c.axisIndex - rank : c.axisIndex;
        const layer = layers.batchNorm({
          axis,
          momentum: c.momentum,
          epsilon: c.epsilon,
          center: c.center,
          scale: c.scale,
          varianceCorrection: c.correction,
        });
        tf.tidy(() => {
          const x = tf.randomNormal(c.shape, 1, 2, 'float32', c.seed);
          layer.build(x.shape);
          const params = layer.getWeights().map((w, i) => {
            const name = layer.weights[i].originalName;
            if (name.endsWith('num_batches_tracked')) return tf.zeros(w.shape);
            if (name.endsWith('moving_variance'))
              return tf.randomUniform(w.shape, 0.5, 2, 'float32', c.seed + i);
            return tf.randomNormal(w.shape, 0, 1, 'float32', c.seed + i);
          });
          layer.setWeights(params);
          const w = params.map((p) => Array.from(p.dataSync()));
          let k = 0;
          const gamma = c.scale ? w[k++] : null;
          const beta = c.center ? w[k++] : null;
          const movingMean = w[k++];
          const movingVar = w[k++];

          // Float64 reference.
          const xs = x.dataSync();
          const strides = c.shape.map((_, i) => c.shape.slice(i + 1).reduce((a, b) => a * b, 1));
          const ch = (flat: number) =>
            Math.floor(flat / strides[c.axisIndex]) % c.shape[c.axisIndex];
          const C = c.shape[c.axisIndex];
          const m = xs.length / C;
          const mean = new Array(C).fill(0);
          xs.forEach((v, i) => (mean[ch(i)] += v / m));
          const varB = new Array(C).fill(0);
          xs.forEach((v, i) => (varB[ch(i)] += (v - mean[ch(i)]) ** 2 / m));
          const affine = (v: number, i: number, mu: number[], s2: number[]) => {
            const j = ch(i);
            const y = (v - mu[j]) / Math.sqrt(s2[j] + c.epsilon);
            return y * (gamma ? gamma[j] : 1) + (beta ? beta[j] : 0);
          };

          const inf = (layer.apply(x) as tf.Tensor).dataSync();
          xs.forEach((v, i) => expect(inf[i]).toBeCloseTo(affine(v, i, movingMean, movingVar), 4));
          const train = (layer.apply(x, { training: true }) as tf.Tensor).dataSync();
          xs.forEach((v, i) =>
            expect(Math.abs(train[i] - affine(v, i, mean, varB))).toBeLessThan(2e-4),
          );

          const d = c.momentum === null ? 1 : 1 - c.momentum;
          const fed = varB.map((v) => (c.correction === 'unbiased' ? (v * m) / (m - 1) : v));
          const after = layer.getWeights();
          const newMean = after[k - 2].dataSync();
          const newVar = after[k - 1].dataSync();
          for (let j = 0; j < C; j++) {
            const expMean = movingMean[j] - (movingMean[j] - mean[j]) * d;
            const expVar = movingVar[j] - (movingVar[j] - fed[j]) * d;
            expect(Math.abs(newMean[j] - expMean)).toBeLessThan(1e-4 * (1 + Math.abs(expMean)));
            expect(Math.abs(newVar[j] - expVar)).toBeLessThan(1e-4 * (1 + Math.abs(expVar)));
          }
        });
      }),
      { numRuns: 60, seed: 20261126 },
    );
  });
});
