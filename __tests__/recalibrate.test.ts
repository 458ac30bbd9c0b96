import * as tf from '@tensorflow/tfjs';
import { BatchNorm, DropnormValueError, layers as dn, recalibrateBatchNorm } from 'tfjs-dropnorm';
import { relativeError as rel } from './batch_norm_helpers';
import { randn, randomizeBatchNorms, snapshotWeights } from './fold_helpers';

const REL = 1e-4;

/** Population mean and variance per channel (last axis) in float64, by two passes. */
function population(x: tf.Tensor2D, unbiased: boolean): { mean: number[]; variance: number[] } {
  const rows = x.arraySync();
  const c = rows[0].length;
  const mean = new Array(c).fill(0);
  const variance = new Array(c).fill(0);
  for (const r of rows) r.forEach((v, j) => (mean[j] += v / rows.length));
  for (const r of rows) r.forEach((v, j) => (variance[j] += (v - mean[j]) ** 2));
  const div = unbiased ? rows.length - 1 : rows.length;
  return { mean, variance: variance.map((v) => v / div) };
}

/** Drifting data: batch k has mean 0.2·k and scale 1 + 0.1·k. */
function driftingData(n: number, batches: number): tf.Tensor2D {
  return tf.tidy(() => {
    const parts = [];
    for (let k = 0; k < batches; k++) parts.push(randn([n, 4], 100 + k, 0.2 * k, 1 + 0.1 * k));
    return tf.concat(parts) as tf.Tensor2D;
  });
}

async function trainedMlp(x: tf.Tensor2D) {
  const dense1 = tf.layers.dense({ inputShape: [4], units: 6 });
  const bn1 = dn.batchNorm({ momentum: 0.99 });
  const dense2 = tf.layers.dense({ units: 5 });
  const bn2 = tf.layers.batchNormalization({ momentum: 0.99 });
  const model = tf.sequential({
    layers: [
      dense1,
      bn1,
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.dropout({ rate: 0.5 }),
      dense2,
      bn2,
      tf.layers.dense({ units: 1 }),
    ],
  });
  model.compile({ optimizer: tf.train.sgd(0.05), loss: 'meanSquaredError' });
  const y = tf.sum(x, 1, true);
  await model.fit(x, y, { epochs: 1, batchSize: 16, shuffle: false, verbose: 0 });
  return { model, dense1, bn1, dense2, bn2 };
}

describe('recalibrateBatchNorm', () => {
  it('after training with momentum 0.99 on drifting data, equals the population statistics', async () => {
    const x = driftingData(32, 8);
    const { model, dense1, bn1, dense2, bn2 } = await trainedMlp(x);
    const mean1Before = bn1.getWeights()[2].dataSync().slice();

    const result = await recalibrateBatchNorm(model, x, { batchSize: 24 });
    expect(result).toEqual([
      { name: bn1.name, count: 256, varianceCorrection: 'unbiased' },
      { name: bn2.name, count: 256, varianceCorrection: 'biased' },
    ]);

    // BN1: population statistics of dense1(x), unbiased (the pack's default).
    const z1 = dense1.apply(x) as tf.Tensor2D;
    const p1 = population(z1, true);
    const [g1, b1, m1, v1] = bn1.getWeights();
    expect(rel(m1.dataSync(), p1.mean)).toBeLessThan(REL);
    expect(rel(v1.dataSync(), p1.variance)).toBeLessThan(REL);
    // The moving average lagged behind the drift: the test can tell the two apart.
    expect(rel(mean1Before, p1.mean)).toBeGreaterThan(0.05);

    // BN2 sees BN1's recalibrated statistics and Dropout in inference mode; biased (built-in).
    const h = tf.relu(
      tf.add(tf.mul(tf.div(tf.sub(z1, p1.mean), tf.sqrt(tf.add(p1.variance, 1e-3))), g1), b1),
    );
    const p2 = population(dense2.apply(h) as tf.Tensor2D, false);
    const [, , m2, v2] = bn2.getWeights();
    expect(rel(m2.dataSync(), p2.mean)).toBeLessThan(REL);
    expect(rel(v2.dataSync(), p2.variance)).toBeLessThan(REL);
  });

  it('gives the same statistics for any batch size and for a tf.data.Dataset', async () => {
    const x = driftingData(10, 5);
    const { model, bn1, bn2 } = await trainedMlp(x);
    const stats = () => [...bn1.getWeights().slice(2), ...bn2.getWeights().slice(2)];
    await recalibrateBatchNorm(model, x, { batchSize: 50 });
    const whole = stats().map((t) => t.dataSync().slice());
    for (const source of [
      () => recalibrateBatchNorm(model, x, { batchSize: 3 }),
      () => recalibrateBatchNorm(model, tf.data.array(tf.unstack(x)).batch(7)),
      () =>
        recalibrateBatchNorm(
          model,
          tf.data
            .zip({ xs: tf.data.array(tf.unstack(x)), ys: tf.data.array(tf.unstack(x)) })
            .batch(16),
        ),
    ]) {
      await source();
      stats().forEach((t, i) => expect(rel(t.dataSync(), whole[i])).toBeLessThan(1e-5));
    }
  });

  it('multi-input models, channels-first conv, biased pack BN; mutates only the moving statistics', async () => {
    const a = tf.input({ shape: [2, 5, 5] });
    const b = tf.input({ shape: [3] });
    const conv = tf.layers.conv2d({ filters: 3, kernelSize: 3, dataFormat: 'channelsFirst' });
    const bnA = dn.batchNorm({ axis: 1, varianceCorrection: 'biased' });
    const bnB = dn.batchNorm({ momentum: null });
    const ha = tf.layers.flatten().apply(bnA.apply(conv.apply(a))) as tf.SymbolicTensor;
    const hb = bnB.apply(b) as tf.SymbolicTensor;
    const out = tf.layers.concatenate().apply([ha, hb]) as tf.SymbolicTensor;
    const model = tf.model({ inputs: [a, b], outputs: out });
    const xa = randn([9, 2, 5, 5], 1, 1, 2);
    const xb = randn([9, 3], 2, -3, 0.5);
    const before = snapshotWeights(model);

    const result = await recalibrateBatchNorm(model, [xa, xb], { batchSize: 4 });
    expect(result.map((r) => r.count)).toEqual([9 * 9, 9]);

    // Channels-first: statistics over batch, height and width of channel axis 1, biased.
    const z = tf.reshape(tf.transpose(conv.apply(xa) as tf.Tensor, [0, 2, 3, 1]), [-1, 3]);
    const pa = population(z as tf.Tensor2D, false);
    const [, , ma, va] = bnA.getWeights();
    expect(rel(ma.dataSync(), pa.mean)).toBeLessThan(REL);
    expect(rel(va.dataSync(), pa.variance)).toBeLessThan(REL);
    const pb = population(xb as tf.Tensor2D, true);
    const wb = bnB.getWeights();
    expect(rel(wb[2].dataSync(), pb.mean)).toBeLessThan(REL);
    expect(rel(wb[3].dataSync(), pb.variance)).toBeLessThan(REL);

    // γ, β, num_batches_tracked and every other layer are as before.
    const after = snapshotWeights(model);
    const statIndices = new Set<number>();
    let i = 0;
    for (const w of model.weights) {
      if (/moving_(mean|variance)/.test(w.originalName)) statIndices.add(i);
      i++;
    }
    expect(statIndices.size).toBe(4);
    after.forEach((w, j) => {
      if (!statIndices.has(j)) expect(w).toEqual(before[j]);
    });
    expect(model.layers.filter((l) => l instanceof BatchNorm).length).toBe(2);
  });

  it('rejects bad input with a clear error', async () => {
    const model = tf.sequential({ layers: [dn.batchNorm({ inputShape: [2] })] });
    await expect(recalibrateBatchNorm({} as tf.LayersModel, tf.zeros([2, 2]))).rejects.toThrow(
      /recalibrateBatchNorm: expected model to be a tf.LayersModel/,
    );
    await expect(recalibrateBatchNorm(model, [1, 2] as unknown as tf.Tensor)).rejects.toThrow(
      /expected data to be a tf.Tensor, an array of tf.Tensor/,
    );
    await expect(recalibrateBatchNorm(model, [tf.zeros([2, 2]), tf.zeros([2, 2])])).rejects.toThrow(
      /number of input tensors in data to equal the model's 1 inputs/,
    );
    await expect(recalibrateBatchNorm(model, tf.zeros([2, 2]), { batchSize: 0 })).rejects.toThrow(
      /batchSize to be an integer/,
    );
    await expect(recalibrateBatchNorm(model, tf.zeros([1, 2]))).rejects.toThrow(
      /at least 2 under varianceCorrection 'unbiased'/,
    );
    const input = tf.input({ shape: [2] });
    const outer = tf.model({ inputs: input, outputs: model.apply(input) as tf.SymbolicTensor });
    await expect(recalibrateBatchNorm(outer, tf.zeros([4, 2]))).rejects.toThrow(
      /BatchNorm inside the nested model/,
    );
  });
});

/** Every weight of the model as bytes, for bit-for-bit comparisons. */
function weightBytes(model: tf.LayersModel): Uint8Array[] {
  return model.getWeights().map((w) => {
    const d = w.dataSync();
    return new Uint8Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength));
  });
}

/**
 * Dense → BatchNorm (pack) → ReLU → Dense → BatchNormalization (built-in) → Dense, with random BN
 * statistics far from any data's, so a BN that was written cannot pass for untouched.
 */
function twoBnModel(): tf.Sequential {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [4], units: 3, name: 'dense1' }),
      dn.batchNorm({ name: 'bn1' }),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.dense({ units: 2, name: 'dense2' }),
      tf.layers.batchNormalization({ name: 'bn2' }),
      tf.layers.dense({ units: 1 }),
    ],
  });
  randomizeBatchNorms(model, 5);
  return model;
}

/** Batches of `x` (4 samples each) from a generator. */
function* batchesOf(x: tf.Tensor): Generator<tf.Tensor> {
  for (let start = 0; start < x.shape[0]; start += 4) yield tf.slice(x, start, 4);
}

describe('recalibrateBatchNorm: all or nothing, with the cause of every failure', () => {
  const x = randn([16, 4], 21, 3, 2);

  /** Runs a failing recalibration: DropnormValueError with `message`, weights bit-identical, no leak. */
  async function expectFailureLeavesModel(
    model: tf.LayersModel,
    run: () => Promise<unknown>,
    message: RegExp,
  ): Promise<Error> {
    const before = weightBytes(model);
    const tensors = tf.memory().numTensors;
    let error: unknown;
    try {
      await run();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DropnormValueError);
    expect((error as Error).message).toMatch(message);
    expect(weightBytes(model)).toEqual(before);
    expect(tf.memory().numTensors).toBe(tensors);
    return error as Error;
  }

  it('a one-shot dataset: fails on the second pass with the fix, and the first BN is restored bit for bit', async () => {
    const model = twoBnModel();
    const bn1Before = model.getLayer('bn1').getWeights()[2].dataSync().slice();
    const once = batchesOf(x);
    const error = await expectFailureLeavesModel(
      model,
      () =>
        recalibrateBatchNorm(
          model,
          tf.data.generator(() => once),
        ),
      /the dataset yielded 16 samples on its first pass and 0 on pass 2: it can be iterated only once.*Pass a fresh dataset that can be iterated again/,
    );
    // Before issue 11: BN1 was overwritten, then "elements per channel" was blamed.
    expect(error.message).not.toMatch(/elements per channel/);
    expect(model.getLayer('bn1').getWeights()[2].dataSync()).toEqual(bn1Before);
    // The same data as a re-iterable dataset works, and does change BN1.
    await recalibrateBatchNorm(
      model,
      tf.data.generator(() => batchesOf(x)),
    );
    expect(model.getLayer('bn1').getWeights()[2].dataSync()).not.toEqual(bn1Before);
  });

  it('an empty or an exhausted dataset: no samples, the fix named', async () => {
    const model = twoBnModel();
    const empty =
      /the dataset yielded no samples: it is empty, or exhausted.*tf\.data\.array\(samples\)\.batch\(32\)/;
    await expectFailureLeavesModel(
      model,
      () => recalibrateBatchNorm(model, tf.data.array<tf.Tensor>([]).batch(4)),
      empty,
    );
    const used = batchesOf(x);
    for (const t of used) t.dispose();
    await expectFailureLeavesModel(
      model,
      () =>
        recalibrateBatchNorm(
          model,
          tf.data.generator(() => used),
        ),
      empty,
    );
  });

  it('a dataset that yields less on a later pass is refused', async () => {
    const model = twoBnModel();
    let pass = 0;
    const half = tf.slice(x, 0, 8);
    const shrinking = tf.data.generator(() => {
      pass++;
      return batchesOf(pass === 1 ? x : half);
    });
    await expectFailureLeavesModel(
      model,
      () => recalibrateBatchNorm(model, shrinking),
      /yielded 16 samples on its first pass and 8 on pass 2: it must yield the same data at every pass/,
    );
  });

  it('empty tensor data', async () => {
    const model = twoBnModel();
    const none = tf.zeros([0, 4]);
    await expectFailureLeavesModel(
      model,
      () => recalibrateBatchNorm(model, none),
      /expected data to hold at least one sample, received: data="0 samples \(shape \[0,4\]\)"/,
    );
  });

  it('an unbatched dataset: call .batch(n)', async () => {
    const model = twoBnModel();
    const samples = tf.unstack(x);
    await expectFailureLeavesModel(
      model,
      () => recalibrateBatchNorm(model, tf.data.array(samples)),
      /shape of input 'dense1_input' in Dataset element 0 to have a batch axis first, received: .*=\[4\]\. The model's input 'dense1_input' takes \[null,4\]\. The dataset is not batched: call \.batch\(n\) on it/,
    );
  });

  it('a wrong input shape, as tensors or as a dataset', async () => {
    const model = twoBnModel();
    const wrong = tf.zeros([8, 3]);
    const wrongSamples = tf.unstack(wrong);
    const expected =
      /to match the model's input shape \[null,4\] \(null: any size\), received: .*=\[(8|4),3\]/;
    await expectFailureLeavesModel(model, () => recalibrateBatchNorm(model, wrong), expected);
    await expectFailureLeavesModel(
      model,
      () => recalibrateBatchNorm(model, tf.data.array(wrongSamples).batch(4)),
      expected,
    );
  });

  it.each([NaN, Infinity, -Infinity])('%s in one sample of the data', async (bad) => {
    const model = twoBnModel();
    const poisoned = tf.tidy(() => {
      const mask = tf.oneHot(tf.tensor1d([9], 'int32'), 16).reshape([16, 1]);
      return tf.where(tf.cast(tf.tile(mask, [1, 4]), 'bool'), tf.fill([16, 4], bad), x);
    });
    await expectFailureLeavesModel(
      model,
      () => recalibrateBatchNorm(model, poisoned, { batchSize: 4 }),
      /the data holds NaN or Infinity \(in batch 2\), so the statistics of BatchNorm 'bn1' would not be finite/,
    );
  });

  it('NaN that reaches only the second BN (data poisoned on pass 2): the first BN is restored', async () => {
    const model = twoBnModel();
    let pass = 0;
    const poisonedLater = tf.data.generator(function* () {
      pass++;
      for (const b of batchesOf(x)) {
        if (pass === 1) {
          yield b;
        } else {
          const poisoned = tf.mul(b, NaN);
          b.dispose();
          yield poisoned;
        }
      }
    });
    await expectFailureLeavesModel(
      model,
      () => recalibrateBatchNorm(model, poisonedLater),
      /the data holds NaN or Infinity \(in batch 0\), so the statistics of BatchNormalization 'bn2'/,
    );
  });

  it('finite data that overflows before the second BN names the model, not the data', async () => {
    const model = twoBnModel();
    const dense2 = model.getLayer('dense2');
    const [kernel, bias] = dense2.getWeights();
    dense2.setWeights([tf.mul(tf.onesLike(kernel), 1e30), bias]);
    await expectFailureLeavesModel(
      model,
      () => recalibrateBatchNorm(model, x),
      /the statistics of BatchNormalization 'bn2' are not finite in channel 0 \(batch 0\) although the data is: the values reaching it overflow float32/,
    );
  });
});

/**
 * A dataset that yields other values on a later pass (issue 20, item 9), detected by an
 * order-independent fingerprint computed on the device; and no synchronous read on the path.
 */
describe('recalibrateBatchNorm: same data on every pass, no synchronous read', () => {
  const x = randn([16, 4], 31, 1, 2);

  it('a dataset yielding the same count but other values on pass 2 is refused; model intact, no leak', async () => {
    const model = twoBnModel();
    const before = weightBytes(model);
    const other = randn([16, 4], 32, 1, 2);
    const tensors = tf.memory().numTensors;
    let pass = 0;
    const changing = tf.data.generator(() => {
      pass++;
      return batchesOf(pass === 1 ? x : other);
    });
    let error: unknown;
    try {
      await recalibrateBatchNorm(model, changing);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DropnormValueError);
    expect((error as Error).message).toMatch(
      /^recalibrateBatchNorm: the dataset yielded 16 samples on every pass, but other values on pass 2 \(their sums differ from the first pass's by [0-9.e+-]+ relative\): it must yield the same data at every pass\..*No weight of the model was changed\.$/,
    );
    expect(weightBytes(model)).toEqual(before);
    expect(tf.memory().numTensors).toBe(tensors);
    other.dispose();
  });

  it('a reshuffled dataset (same samples, other order and batches) is the same data', async () => {
    const viaTensor = twoBnModel();
    const viaShuffled = twoBnModel();
    viaShuffled.setWeights(viaTensor.getWeights());
    await recalibrateBatchNorm(viaTensor, x, { batchSize: 16 });
    // tf.data shuffles again at every iteration: each BN's pass sees another order.
    const rows = tf.unstack(x);
    const shuffled = tf.data.array(rows).shuffle(16, 'seed').batch(5);
    await recalibrateBatchNorm(viaShuffled, shuffled);
    for (const name of ['bn1', 'bn2']) {
      const [a, b] = [viaTensor, viaShuffled].map((m) => m.getLayer(name).getWeights());
      for (const i of [2, 3]) expect(rel(b[i].dataSync(), a[i].dataSync())).toBeLessThan(REL);
    }
    tf.dispose(rows);
  });

  it('reads nothing synchronously (dataSync / arraySync / readSync), with tensors and a dataset', async () => {
    const model = twoBnModel();
    const dataset = tf.data.generator(() => batchesOf(x));
    // The engine's readSync is what every synchronous read goes through (Tensor.dataSync,
    // arraySync, bufferSync); the cpu backend's own readSync also serves async reads.
    const engine = tf.engine();
    const spies = [
      jest.spyOn(tf.Tensor.prototype, 'dataSync'),
      jest.spyOn(tf.Tensor.prototype, 'arraySync'),
      jest.spyOn(engine, 'readSync'),
    ];
    try {
      await recalibrateBatchNorm(model, x, { batchSize: 4 });
      await recalibrateBatchNorm(model, dataset);
      expect(spies.map((s) => s.mock.calls.length)).toEqual([0, 0, 0]);
    } finally {
      spies.forEach((s) => s.mockRestore());
    }
    // The spies were live: a read through them is seen.
    const probe = jest.spyOn(engine, 'readSync');
    tf.scalar(1).dataSync();
    expect(probe).toHaveBeenCalled();
    probe.mockRestore();
  });
});
