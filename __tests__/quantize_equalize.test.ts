/**
 * Cross-layer equalization (Nagel et al. 2019, Sec. 3) keeps the float function: outputs unchanged
 * within 1e-5 relative on dense, conv and depthwise chains, per-channel ranges of each pair equal
 * afterwards (r₁ᵢ/sᵢ = r₂ᵢ·sᵢ), and pairs through ReLU6 left alone with the reason.
 */
import * as tf from '@tensorflow/tfjs';
import { channelRanges, equalizeWeights } from '../src/model/equalize';

type Sym = tf.SymbolicTensor;

/**
 * Kernel values with output channel c of the last axis scaled by 4^(c mod 5 − 2): folded-BN-like
 * per-channel spread of 256× between the widest and the narrowest channel.
 */
function skew(model: tf.LayersModel): void {
  for (const layer of model.layers) {
    const weights = layer.getWeights();
    if (weights.length === 0) continue;
    const next = weights.map((w, k) =>
      tf.tidy(() => {
        const last = w.shape[w.shape.length - 1]!;
        const factor = tf.tensor1d(Array.from({ length: last }, (_, c) => 4 ** ((c % 5) - 2)));
        const base = tf.randomNormal(w.shape, 0, 1, 'float32', 7 + k);
        return k === 0 ? tf.mul(base, factor) : tf.mul(base, 0.1);
      }),
    );
    layer.setWeights(next);
    tf.dispose(next); // getWeights returns the variables themselves: not disposed
  }
}

/** Equalizes `model`'s weights, returns the equalized copy's and the original's outputs. */
async function equalized(model: tf.LayersModel, x: tf.Tensor) {
  skew(model);
  const values = await Promise.all(
    model.weights.map(async (w) => Float32Array.from(await w.read().data())),
  );
  const result = equalizeWeights(model, values);
  const tensors = values.map((v, k) => tf.tensor(v, model.weights[k].shape as number[]));
  const y = model.predict(x) as tf.Tensor;
  const original = model.getWeights().map((w) => w.clone());
  model.setWeights(tensors);
  const yEq = model.predict(x) as tf.Tensor;
  model.setWeights(original);
  const rel = tf.tidy(() => tf.norm(tf.sub(yEq, y)).div(tf.norm(y)).dataSync()[0]);
  tf.dispose([...tensors, ...original, y, yEq]);
  return { result, rel, values };
}

function dense(units: number, activation: 'relu' | 'linear', name: string) {
  return tf.layers.dense({ units, activation, name });
}

describe('equalizeWeights', () => {
  it('leaves a Dense → ReLU → Dense → Dense chain unchanged and equalizes each pair', async () => {
    const x = tf.input({ shape: [12] });
    let h = dense(16, 'linear', 'd1').apply(x) as Sym;
    h = tf.layers.reLU({ name: 'r1' }).apply(h) as Sym;
    h = dense(10, 'relu', 'd2').apply(h) as Sym;
    h = dense(3, 'linear', 'd3').apply(h) as Sym;
    const model = tf.model({ inputs: x, outputs: h });
    const input = tf.randomNormal([32, 12], 0, 1, 'float32', 1);
    const before = tf.memory().numTensors;
    const { result, rel, values } = await equalized(model, input);
    expect(tf.memory().numTensors).toBe(before);
    expect(rel).toBeLessThan(1e-5);
    expect(result.pairs.map((p) => [p.from, p.to, p.through])).toEqual([
      ['d1', 'd2', ['r1']],
      ['d2', 'd3', []],
    ]);
    // Converged: the last pair's channels have equal ranges on both sides.
    const shapes = model.weights.map((w) => w.shape as number[]);
    const r1 = channelRanges(values[2], shapes[2], 1); // d2 kernel, output channels
    const r2 = channelRanges(values[4], shapes[4], 0); // d3 kernel, input channels
    r1.forEach((r, i) => expect(r / r2[i]).toBeCloseTo(1, 3));
    for (const p of result.pairs) expect(p.rangeUse.after).toBeGreaterThan(p.rangeUse.before);
    input.dispose();
    model.dispose();
  });

  it('leaves a Conv2D → ReLU → ZeroPadding2D → MaxPooling2D → Conv2D chain unchanged', async () => {
    const x = tf.input({ shape: [9, 9, 3] });
    let h = tf.layers
      .conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1' })
      .apply(x) as Sym;
    h = tf.layers.zeroPadding2d({ padding: 1, name: 'pad' }).apply(h) as Sym;
    h = tf.layers.maxPooling2d({ poolSize: 2, name: 'pool' }).apply(h) as Sym;
    h = tf.layers.conv2d({ filters: 5, kernelSize: 3, name: 'c2' }).apply(h) as Sym;
    const model = tf.model({ inputs: x, outputs: h });
    const input = tf.randomNormal([4, 9, 9, 3], 0, 1, 'float32', 2);
    const { result, rel } = await equalized(model, input);
    expect(rel).toBeLessThan(1e-5);
    expect(result.pairs).toHaveLength(1);
    expect(result.pairs[0].through).toEqual(['pad', 'pool']);
    input.dispose();
    model.dispose();
  });

  it('leaves a Conv2D → ReLU → DepthwiseConv2D → ReLU → Conv2D chain unchanged', async () => {
    const x = tf.input({ shape: [8, 8, 3] });
    let h = tf.layers
      .conv2d({ filters: 6, kernelSize: 1, activation: 'relu', name: 'expand' })
      .apply(x) as Sym;
    h = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', name: 'dw' }).apply(h) as Sym;
    h = tf.layers.activation({ activation: 'relu', name: 'act' }).apply(h) as Sym;
    h = tf.layers.conv2d({ filters: 4, kernelSize: 1, name: 'project' }).apply(h) as Sym;
    const model = tf.model({ inputs: x, outputs: h });
    const input = tf.randomNormal([4, 8, 8, 3], 0, 1, 'float32', 3);
    const { result, rel } = await equalized(model, input);
    expect(rel).toBeLessThan(1e-5);
    expect(result.pairs.map((p) => [p.from, p.to])).toEqual([
      ['expand', 'dw'],
      ['dw', 'project'],
    ]);
    expect(result.sweeps).toBeGreaterThan(1); // dw is in two pairs: iterated to convergence
    input.dispose();
    model.dispose();
  });

  it('leaves pairs through ReLU6, residual branches and softmax alone, with the reason', async () => {
    const x = tf.input({ shape: [6] });
    const a = dense(6, 'linear', 'a').apply(x) as Sym;
    const r6 = tf.layers.reLU({ maxValue: 6, name: 'relu6' }).apply(a) as Sym;
    const b = dense(6, 'linear', 'b').apply(r6) as Sym;
    const sum = tf.layers.add({ name: 'add' }).apply([b, r6]) as Sym;
    const c = tf.layers.dense({ units: 3, activation: 'softmax', name: 'c' }).apply(sum) as Sym;
    const model = tf.model({ inputs: x, outputs: c });
    const input = tf.randomNormal([8, 6], 0, 1, 'float32', 4);
    const { result, rel } = await equalized(model, input);
    expect(result.pairs).toEqual([]);
    expect(rel).toBe(0);
    const reasons = Object.fromEntries(result.skipped.map((s) => [s.from, s.reason]));
    expect(reasons.a).toMatch(
      /ReLU 'relu6' clips at maxValue 6 \(ReLU6 is not positively homogeneous/,
    );
    expect(reasons.b).toMatch(/read 1 times|read 2 times|Add/);
    expect(reasons.c).toMatch(/activation 'softmax'/);
    input.dispose();
    model.dispose();
  });
});
