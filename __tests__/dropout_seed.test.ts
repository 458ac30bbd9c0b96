// Seeded mask sequences: same seed → same sequence, a new mask every call, and the first call
// equal to the tfjs built-in with the same seed (which then repeats that mask forever).
import * as tf from '@tensorflow/tfjs';
import { SeedStream, layers, mixSeed } from 'tfjs-dropnorm';
import { maxAbsDiff } from './helpers';

const x = tf.ones([64, 128]);

function trainingOutputs(layer: tf.layers.Layer, input: tf.Tensor, calls: number): Float32Array[] {
  const outs: Float32Array[] = [];
  for (let i = 0; i < calls; i++) {
    const y = layer.apply(input, { training: true }) as tf.Tensor;
    outs.push(y.dataSync() as Float32Array);
    if (y !== input) y.dispose();
  }
  return outs;
}

function equalArrays(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

describe('SeedStream', () => {
  test('call 0 is the seed itself, later calls are derived and distinct', () => {
    const s = new SeedStream(42);
    const seeds = [s.next(), s.next(), s.next(), s.next()];
    expect(seeds[0]).toBe(42);
    expect(new Set(seeds).size).toBe(4);
    expect(seeds[2]).toBe(mixSeed(42, 2));
    expect(s.position).toBe(4);
    s.reset();
    expect(s.next()).toBe(42);
  });

  test('same seed gives the same sequence, another seed another one', () => {
    const a = new SeedStream(7);
    const b = new SeedStream(7);
    const c = new SeedStream(8);
    const seqA = Array.from({ length: 50 }, () => a.next());
    expect(Array.from({ length: 50 }, () => b.next())).toEqual(seqA);
    const seqC = Array.from({ length: 50 }, () => c.next());
    expect(seqC.filter((v, i) => v === seqA[i])).toHaveLength(0);
  });

  test('an unseeded stream leaves seeding to tfjs', () => {
    const s = new SeedStream();
    expect(s.next()).toBeUndefined();
    expect(s.next()).toBeUndefined();
  });
});

describe('seeded Dropout', () => {
  test('the first training call equals tf.layers.dropout with the same seed, bit for bit', () => {
    for (const rate of [0.1, 0.5]) {
      const ours = layers.dropout({ rate, seed: 1234 });
      const builtin = tf.layers.dropout({ rate, seed: 1234 });
      const y = ours.apply(x, { training: true }) as tf.Tensor;
      const yb = builtin.apply(x, { training: true }) as tf.Tensor;
      expect(maxAbsDiff(y, yb)).toBe(0);
      // Not a trivial equality: about `rate` of the units are zero.
      const zeros = tf.tidy(() => tf.sum(tf.equal(y, 0)).dataSync()[0]) / y.size;
      expect(Math.abs(zeros - rate)).toBeLessThan(0.05);
      tf.dispose([y, yb]);
    }
  });

  test('consecutive calls draw different masks; the built-in repeats its mask (its bug)', () => {
    const ours = trainingOutputs(layers.dropout({ rate: 0.5, seed: 99 }), x, 3);
    expect(equalArrays(ours[0], ours[1])).toBe(false);
    expect(equalArrays(ours[1], ours[2])).toBe(false);
    const builtin = trainingOutputs(tf.layers.dropout({ rate: 0.5, seed: 99 }), x, 3);
    expect(equalArrays(builtin[0], builtin[1])).toBe(true);
    expect(equalArrays(builtin[0], builtin[2])).toBe(true);
  });

  test('the same seed reproduces the whole sequence; resetSeedStream restarts it', () => {
    const a = layers.dropout({ rate: 0.3, seed: 5 });
    const b = layers.dropout({ rate: 0.3, seed: 5 });
    const seqA = trainingOutputs(a, x, 4);
    const seqB = trainingOutputs(b, x, 4);
    seqA.forEach((m, i) => expect(equalArrays(m, seqB[i])).toBe(true));
    a.resetSeedStream();
    expect(equalArrays(trainingOutputs(a, x, 1)[0], seqA[0])).toBe(true);
    const other = trainingOutputs(layers.dropout({ rate: 0.3, seed: 6 }), x, 1)[0];
    expect(equalArrays(other, seqA[0])).toBe(false);
  });

  test('without a seed every call draws a fresh mask', () => {
    const outs = trainingOutputs(layers.dropout({ rate: 0.5 }), x, 2);
    expect(equalArrays(outs[0], outs[1])).toBe(false);
  });

  test('inference calls do not advance the sequence', () => {
    const a = layers.dropout({ rate: 0.3, seed: 11 });
    const b = layers.dropout({ rate: 0.3, seed: 11 });
    const y = a.apply(x) as tf.Tensor;
    expect(maxAbsDiff(y, x)).toBe(0);
    y.dispose();
    expect(equalArrays(trainingOutputs(a, x, 1)[0], trainingOutputs(b, x, 1)[0])).toBe(true);
  });

  test('spatialDropout1d: first seeded call equals tf.layers.spatialDropout1d', () => {
    const seq = tf.randomNormal([16, 10, 32], 0, 1, 'float32', 3);
    const ours = layers.spatialDropout1d({ rate: 0.4, seed: 77 });
    const builtin = tf.layers.spatialDropout1d({ rate: 0.4, seed: 77 });
    const y = ours.apply(seq, { training: true }) as tf.Tensor;
    const yb = builtin.apply(seq, { training: true }) as tf.Tensor;
    expect(maxAbsDiff(y, yb)).toBe(0);
    const y2 = ours.apply(seq, { training: true }) as tf.Tensor;
    expect(maxAbsDiff(y, y2)).toBeGreaterThan(0);
    tf.dispose([seq, y, yb, y2]);
  });

  test.each([
    ['spatialDropout2d', () => layers.spatialDropout2d({ rate: 0.5, seed: 3 }), [4, 6, 6, 8]],
    ['gaussianDropout', () => layers.gaussianDropout({ rate: 0.5, seed: 3 }), [8, 32]],
    ['alphaDropout', () => layers.alphaDropout({ rate: 0.5, seed: 3 }), [8, 32]],
    ['dropBlock2d', () => layers.dropBlock2d({ rate: 0.3, blockSize: 3, seed: 3 }), [4, 12, 12, 2]],
    ['dropPath', () => layers.dropPath({ rate: 0.5, seed: 3 }), [32, 4]],
  ] as const)('%s: same seed same sequence, consecutive calls differ', (_name, make, shape) => {
    const input = tf.ones(shape as unknown as number[]);
    const a = trainingOutputs(make(), input, 2);
    const b = trainingOutputs(make(), input, 2);
    expect(equalArrays(a[0], b[0])).toBe(true);
    expect(equalArrays(a[1], b[1])).toBe(true);
    expect(equalArrays(a[0], a[1])).toBe(false);
    input.dispose();
  });
});
