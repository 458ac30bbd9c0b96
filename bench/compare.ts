/**
 * `npm run compare`: the pack's layers side by side with the tfjs built-ins they replace.
 *
 * For every pair (Dropout, SpatialDropout1D, GaussianDropout, AlphaDropout, BatchNorm 'unbiased'
 * and 'biased', the latter also on a batch of one, a NaN sample and a masked padded batch; GroupNorm
 * with groups 1 against LayerNormalization and with groups C against instance norm by hand; RMSNorm
 * against its formula) it
 * measures each property on both, and states a verdict from the numbers: "same"
 * (within the row's tolerance) or "differs", with the reason and its reference. Every row also
 * declares what it expects; a row whose numbers contradict its expectation is UNEXPECTED and makes
 * the command exit 1, so this is a check, not only a report.
 *
 * Flags: --backend NAME, --out DIR (default reports).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import * as dn from 'tfjs-dropnorm';
import { pickBackend } from 'tfjs-dropnorm/node';
import { parseArgs } from '../experiments/lib/cli';
import { fmt, formatTable, markdownTable, toJson } from '../experiments/lib/report';

/** One checked property of one pair. */
export interface Row {
  pair: string;
  property: string;
  pack: number;
  builtin: number;
  /** |pack − builtin| ≤ tolerance counts as the same. */
  tolerance: number;
  /** null: expected the same. A string: the expected difference, why, and the reference. */
  expectedDifference: string | null;
  verdict?: string;
  unexpected?: boolean;
}

const N = 200_000;
type AnyLayer = tf.layers.Layer;

const apply = (layer: AnyLayer, x: tf.Tensor, training = false) =>
  layer.apply(x, { training }) as tf.Tensor;
const scalar = (t: tf.Tensor) => t.dataSync()[0];
const maxAbs = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => scalar(tf.max(tf.abs(tf.sub(a, b)))));
const dropFraction = (y: tf.Tensor) =>
  tf.tidy(() => scalar(tf.mean(tf.cast(tf.equal(y, 0), 'float32'))));
const meanOf = (y: tf.Tensor) => tf.tidy(() => scalar(tf.mean(y)));
const varianceOf = (y: tf.Tensor) => tf.tidy(() => scalar(tf.moments(y).variance));

/** max |∂Σy/∂x − y/x|: zero when the gradient is exactly mask × scale (x ≠ 0). */
function gradientIsMaskTimesScale(layer: AnyLayer, x: tf.Tensor): number {
  let y: tf.Tensor | null = null;
  const g = tf.grad((xx: tf.Tensor) => {
    // Kept: the output (and so the mask) of this very call is needed after tf.grad returns.
    y = tf.keep(apply(layer, xx, true));
    return tf.sum(y);
  })(x);
  const err = tf.tidy(() => maxAbs(g, tf.div(y!, x)));
  tf.dispose([g, y!]);
  return err;
}

/** Both layers are the identity at inference (classic dropout aside): max |y − x| for each. */
function inferenceRow(pair: string, ours: AnyLayer, builtin: AnyLayer, x: tf.Tensor): Row {
  return {
    pair,
    property: 'inference: max |y − x|',
    pack: maxAbs(apply(ours, x), x),
    builtin: maxAbs(apply(builtin, x), x),
    tolerance: 0,
    expectedDifference: null,
  };
}

/** Both layers' gradients are exactly mask × 1/(1−rate): max error for each. */
function gradientRow(pair: string, ours: AnyLayer, builtin: AnyLayer, x: tf.Tensor): Row {
  return {
    pair,
    property: 'gradient = mask × 1/(1−rate): max error',
    pack: gradientIsMaskTimesScale(ours, x),
    builtin: gradientIsMaskTimesScale(builtin, x),
    tolerance: 1e-5,
    expectedDifference: null,
  };
}

function dropoutRows(): Row[] {
  const pair = 'Dropout (rate 0.3, seed 7)';
  const rate = 0.3;
  const x = tf.add(tf.randomUniform([N / 100, 100], 0, 1, 'float32', 1), 0.5);
  const ours = dn.layers.dropout({ rate, seed: 7 });
  const builtin = tf.layers.dropout({ rate, seed: 7 });
  const o1 = apply(ours, x, true);
  const b1 = apply(builtin, x, true);
  const o2 = apply(ours, x, true);
  const b2 = apply(builtin, x, true);
  const changed = (a: tf.Tensor, b: tf.Tensor) =>
    tf.tidy(() => scalar(tf.mean(tf.cast(tf.notEqual(tf.equal(a, 0), tf.equal(b, 0)), 'float32'))));
  const classic = dn.layers.dropout({ rate, mode: 'classic' });
  return [
    inferenceRow(pair, ours, builtin, x),
    {
      pair,
      property: 'training, first call: max |pack − built-in|',
      pack: maxAbs(o1, b1),
      builtin: 0,
      tolerance: 0,
      expectedDifference: null,
    },
    {
      pair,
      property: 'dropped fraction (2e5 units)',
      pack: dropFraction(o1),
      builtin: dropFraction(b1),
      tolerance: 4 * Math.sqrt((rate * (1 - rate)) / N) * 2,
      expectedDifference: null,
    },
    {
      pair,
      property: 'fraction of units whose mask changed between two calls',
      pack: changed(o1, o2),
      builtin: changed(b1, b2),
      tolerance: 0.01,
      expectedDifference:
        'a seeded built-in draws the same mask at every call (not dropout); the pack draws a new mask per call from a seeded sequence (2·p·(1−p) = 0.42 expected)',
    },
    gradientRow(pair, ours, builtin, x),
    {
      pair,
      property: "mode 'classic' inference: max |y − (1−rate)·x|",
      pack: maxAbs(apply(classic, x), tf.mul(x, 1 - rate)),
      builtin: maxAbs(apply(builtin, x), tf.mul(x, 1 - rate)),
      tolerance: 1e-6,
      expectedDifference:
        'classic dropout (Srivastava et al. 2014) scales at inference; the built-in has only inverted dropout',
    },
  ];
}

function spatialRows(): Row[] {
  const pair = 'SpatialDropout1D (rate 0.3)';
  const rate = 0.3;
  const x = tf.add(tf.randomUniform([200, 50, 20], 0, 1, 'float32', 2), 0.5);
  const ours = dn.layers.spatialDropout1d({ rate, seed: 3 });
  const builtin = tf.layers.spatialDropout1d({ rate, seed: 3 });
  const o = apply(ours, x, true);
  const b = apply(builtin, x, true);
  // A channel is "mixed" when some but not all of its timesteps are zero.
  const mixed = (y: tf.Tensor) =>
    tf.tidy(() => {
      const zeros = tf.sum(tf.cast(tf.equal(y, 0), 'float32'), 1);
      return scalar(
        tf.mean(tf.cast(tf.logicalAnd(tf.greater(zeros, 0), tf.less(zeros, 50)), 'float32')),
      );
    });
  return [
    inferenceRow(pair, ours, builtin, x),
    {
      pair,
      property: 'dropped fraction',
      pack: dropFraction(o),
      builtin: dropFraction(b),
      tolerance: 0.03,
      expectedDifference: null,
    },
    {
      pair,
      property: 'channels partly dropped (must be 0)',
      pack: mixed(o),
      builtin: mixed(b),
      tolerance: 0,
      expectedDifference: null,
    },
    {
      pair,
      property: 'kept channel scale (max y/x)',
      pack: tf.tidy(() => scalar(tf.max(tf.div(o, x)))),
      builtin: tf.tidy(() => scalar(tf.max(tf.div(b, x)))),
      tolerance: 1e-5,
      expectedDifference: null,
    },
    gradientRow(pair, ours, builtin, x),
  ];
}

function gaussianRows(): Row[] {
  const pair = 'GaussianDropout (rate 0.3)';
  const rate = 0.3;
  const x = tf.ones([N]);
  const ours = dn.layers.gaussianDropout({ rate, seed: 4 });
  const builtin = tf.layers.gaussianDropout({ rate });
  const o = apply(ours, x, true);
  const b = apply(builtin, x, true);
  return [
    inferenceRow(pair, ours, builtin, x),
    {
      pair,
      property: 'output mean, unit input (expected 1)',
      pack: meanOf(o),
      builtin: meanOf(b),
      tolerance: 0.01,
      expectedDifference: null,
    },
    {
      pair,
      property: `output variance, unit input (expected rate/(1−rate) = ${fmt(rate / (1 - rate))})`,
      pack: varianceOf(o),
      builtin: varianceOf(b),
      tolerance: 0.03 * (rate / (1 - rate)),
      expectedDifference: null,
    },
  ];
}

function alphaRows(): Row[] {
  const rows: Row[] = [];
  for (const rate of [0.1, 0.3]) {
    const pair = `AlphaDropout (rate ${rate})`;
    const x = tf.randomNormal([N], 0, 1, 'float32', 5);
    const ours = dn.layers.alphaDropout({ rate, seed: 6 });
    const builtin = tf.layers.alphaDropout({ rate });
    const o = apply(ours, x, true);
    const b = apply(builtin, x, true);
    const why =
      'the built-in sets dropped units to +α′ instead of −α′ = −λα (Klambauer et al. 2017, Sec. "New Dropout Technique"), so the output is no longer zero-mean, unit-variance';
    rows.push(
      inferenceRow(pair, ours, builtin, x),
      {
        pair,
        property: 'output mean, N(0,1) input (expected 0)',
        pack: meanOf(o),
        builtin: meanOf(b),
        tolerance: 0.02,
        expectedDifference: why,
      },
      // Measured: the built-in's variance stays near 1; only its mean is shifted.
      {
        pair,
        property: 'output variance, N(0,1) input (expected 1)',
        pack: varianceOf(o),
        builtin: varianceOf(b),
        tolerance: 0.03,
        expectedDifference: null,
      },
    );
  }
  return rows;
}

function batchNormRows(correction: 'unbiased' | 'biased'): Row[] {
  const pair = `BatchNorm '${correction}'`;
  const shape = [8, 4, 4, 6];
  const m = 8 * 4 * 4;
  const ours = dn.layers.batchNorm({ varianceCorrection: correction, momentum: 0.9 });
  const builtin = tf.layers.batchNormalization({ momentum: 0.9 });
  ours.build(shape);
  builtin.build(shape);
  const init = [
    tf.randomNormal([6], 1, 0.3, 'float32', 7),
    tf.randomNormal([6], 0, 0.3, 'float32', 8),
    tf.randomNormal([6], 0, 0.3, 'float32', 9),
    tf.randomUniform([6], 0.5, 2, 'float32', 10),
  ];
  ours.setWeights(init);
  builtin.setWeights(init);
  const x = tf.randomNormal(shape, 2, 3, 'float32', 11);
  const dy = tf.randomNormal(shape, 0, 1, 'float32', 12);
  // Inference first: every training call below moves the two layers' statistics apart.
  const inference = maxAbs(apply(ours, x), apply(builtin, x));
  const grad = (l: AnyLayer) =>
    tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(apply(l, xx, true), dy)))(x);
  const gOurs = grad(ours);
  const gBuiltin = grad(builtin);
  const rows: Row[] = [
    {
      pair,
      property: 'inference: max |pack − built-in|',
      pack: inference,
      builtin: 0,
      tolerance: 1e-6,
      expectedDifference: null,
    },
    {
      pair,
      property: 'training: max |pack − built-in|',
      pack: maxAbs(apply(ours, x, true), apply(builtin, x, true)),
      builtin: 0,
      tolerance: 1e-5,
      expectedDifference: null,
    },
    {
      pair,
      property: 'gradient dx: max |pack − built-in|',
      pack: maxAbs(gOurs, gBuiltin),
      builtin: 0,
      tolerance: 1e-5,
      expectedDifference: null,
    },
  ];
  // k more steps, then compare the running statistics.
  for (let k = 0; k < 5; k++) {
    const xk = tf.randomNormal(shape, k, 1 + k, 'float32', 20 + k);
    apply(ours, xk, true);
    apply(builtin, xk, true);
  }
  const [, , oMean, oVar] = ours.getWeights();
  const [, , bMean, bVar] = builtin.getWeights();
  rows.push({
    pair,
    property: 'moving_mean after 7 steps: max |pack − built-in|',
    pack: maxAbs(oMean, bMean),
    builtin: 0,
    tolerance: 1e-5,
    expectedDifference: null,
  });
  // One fresh step with momentum 0 isolates the variance each feeds its average.
  const o0 = dn.layers.batchNorm({ varianceCorrection: correction, momentum: 0 });
  const b0 = tf.layers.batchNormalization({ momentum: 0 });
  apply(o0, x, true);
  apply(b0, x, true);
  rows.push({
    pair,
    property: `variance fed to moving_variance / batch σ²_B (m = ${m}; m/(m−1) = ${(m / (m - 1)).toFixed(5)})`,
    pack: tf.tidy(() =>
      scalar(tf.mean(tf.div(o0.getWeights()[3], tf.moments(x, [0, 1, 2]).variance))),
    ),
    builtin: tf.tidy(() =>
      scalar(tf.mean(tf.div(b0.getWeights()[3], tf.moments(x, [0, 1, 2]).variance))),
    ),
    tolerance: 1e-5,
    expectedDifference:
      correction === 'unbiased'
        ? 'unbiased population estimate Var[x] = m/(m−1)·E[σ²_B] (Ioffe & Szegedy 2015, Alg. 2; PyTorch running_var); the built-in uses the biased σ²_B'
        : null,
  });
  rows.push({
    pair,
    property: 'moving_variance after 7 steps: mean ratio pack / built-in',
    pack: tf.tidy(() => scalar(tf.mean(tf.div(oVar, bVar)))),
    builtin: 1,
    tolerance: 1e-5,
    expectedDifference:
      correction === 'unbiased' ? 'follows from the unbiased variance above' : null,
  });
  // Channels-first: both against a direct computation.
  const xc = tf.randomNormal([2, 3, 4, 5], 0, 1, 'float32', 30);
  const oc = dn.layers.batchNorm({ axis: 1, varianceCorrection: correction });
  const bc = tf.layers.batchNormalization({ axis: 1 });
  const direct = tf.tidy(() => {
    const { mean, variance } = tf.moments(xc, [0, 2, 3], true);
    return tf.div(tf.sub(xc, mean), tf.sqrt(tf.add(variance, 1e-3)));
  });
  rows.push({
    pair,
    property: 'channels-first (axis 1, [2,3,4,5]) training: max |y − direct formula|',
    pack: maxAbs(apply(oc, xc, true), direct),
    builtin: maxAbs(apply(bc, xc, true), direct),
    tolerance: 1e-5,
    expectedDifference:
      'the built-in applies per-channel statistics along the last axis (tfjs#1106)',
  });
  return rows;
}

/**
 * Ordinary training data the built-in mishandles (issue 11): a batch of one, a NaN sample, and a
 * padded sequence batch with its mask.
 */
function batchNormDataRows(correction: 'unbiased' | 'biased'): Row[] {
  const pair = `BatchNorm '${correction}'`;
  const C = 4;
  const init = [
    tf.randomNormal([C], 1, 0.3, 'float32', 50),
    tf.randomNormal([C], 0, 0.3, 'float32', 51),
    tf.zeros([C]),
    tf.ones([C]),
  ];
  const fresh = (shape: number[]) => {
    const ours = dn.layers.batchNorm({ varianceCorrection: correction, momentum: 0 });
    const builtin = tf.layers.batchNormalization({ momentum: 0 });
    return [ours, builtin].map((l) => {
      l.build(shape);
      l.setWeights(init);
      return l;
    });
  };
  const rows: Row[] = [];

  // m = 1, the last batch of fit when samples % batchSize == 1.
  const one = tf.randomNormal([1, C], 3, 2, 'float32', 52);
  const [o1, b1] = fresh([1, C]);
  rows.push({
    pair,
    property: 'batch of one (m = 1), training: max |y − β|',
    pack: maxAbs(apply(o1, one, true), init[1]),
    builtin: maxAbs(apply(b1, one, true), init[1]),
    tolerance: 1e-6,
    expectedDifference: null,
  });
  rows.push({
    pair,
    property: 'batch of one, momentum 0: mean moving_variance (initial 1)',
    pack: meanOf(o1.getWeights()[3]),
    builtin: meanOf(b1.getWeights()[3]),
    tolerance: 1e-6,
    expectedDifference:
      correction === 'unbiased'
        ? "m/(m−1) is undefined at m = 1: 'unbiased' leaves the running statistics unchanged (with a one-time warning); the built-in feeds σ²_B = 0"
        : null,
  });

  // One NaN sample among 8.
  const poisoned = tf.tidy(() => {
    const v = tf.randomNormal([8, C], 0, 1, 'float32', 53).dataSync().slice();
    v.fill(NaN, 2 * C, 3 * C);
    return tf.tensor2d(v, [8, C]);
  });
  const [oNaN, bNaN] = fresh([8, C]);
  apply(oNaN, poisoned, true);
  apply(bNaN, poisoned, true);
  const nonFinite = (l: AnyLayer) =>
    tf.tidy(() =>
      scalar(
        tf.addN(
          l
            .getWeights()
            .slice(2, 4)
            .map((w) => tf.sum(tf.cast(tf.logicalNot(tf.isFinite(w)), 'float32'))),
        ),
      ),
    );
  rows.push({
    pair,
    property: `one NaN sample: non-finite entries of moving_mean and moving_variance (of ${2 * C})`,
    pack: nonFinite(oNaN),
    builtin: nonFinite(bNaN),
    tolerance: 0,
    expectedDifference:
      'the pack keeps a channel whose batch statistics are not finite (tf.where on the device, no read-back); the built-in writes NaN, and every later prediction is NaN',
  });

  // A padded sequence batch [4, 6, C] with its mask, padding zeroed as tf.layers.masking outputs it.
  const lengths = [6, 2, 4, 1];
  const mask = tf.tidy(() =>
    tf.less(tf.tile(tf.range(0, 6).expandDims(0), [4, 1]), tf.tensor1d(lengths).expandDims(1)),
  );
  const padded = tf.tidy(() =>
    tf.mul(
      tf.randomNormal([4, 6, C], 2, 1, 'float32', 54),
      tf.expandDims(tf.cast(mask, 'float32'), 2),
    ),
  );
  const realMean = tf.tidy(() =>
    tf.div(
      tf.sum(padded, [0, 1]),
      lengths.reduce((a, b) => a + b, 0),
    ),
  );
  const [oMask, bMask] = fresh([4, 6, C]);
  oMask.apply(padded, { training: true, mask });
  bMask.apply(padded, { training: true, mask });
  rows.push({
    pair,
    property:
      'padded batch with its mask, momentum 0: max |moving_mean − mean over real timesteps|',
    pack: maxAbs(oMask.getWeights()[2], realMean),
    builtin: maxAbs(bMask.getWeights()[2], realMean),
    tolerance: 1e-5,
    expectedDifference:
      'masked positions are excluded from μ_B, σ²_B and m (Keras 3 BatchNormalization); the built-in ignores the mask and learns the padding',
  });
  return rows;
}

async function frozenRows(): Promise<Row[]> {
  const pair = 'BatchNorm frozen (trainable = false)';
  const movement = async (bn: AnyLayer) => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({
          units: 4,
          inputShape: [6],
          kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
        }),
        bn,
        tf.layers.dense({ units: 1 }),
      ],
    });
    bn.trainable = false;
    model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
    const before = bn.getWeights().map((w) => w.dataSync().slice());
    const x = tf.randomNormal([32, 6], 1, 2, 'float32', 40);
    await model.fit(x, tf.sum(x, 1, true), { epochs: 2, batchSize: 8, verbose: 0 });
    return Math.max(
      ...bn
        .getWeights()
        .map((w, i) => Math.max(...w.dataSync().map((v, j) => Math.abs(v - before[i][j])))),
    );
  };
  return [
    {
      pair,
      property: 'max change of any BN weight during fit',
      pack: await movement(dn.layers.batchNorm()),
      builtin: await movement(tf.layers.batchNormalization()),
      tolerance: 0,
      expectedDifference:
        'Keras (≥ 2.1.3, Keras 3) runs a non-trainable BN in inference mode; the built-in keeps updating its moving statistics',
    },
  ];
}

/** Fills in verdicts: "same", "differs: reason", or UNEXPECTED when the numbers contradict the row. */
export function judge(rows: Row[]): Row[] {
  return rows.map((r) => {
    const same = Math.abs(r.pack - r.builtin) <= r.tolerance;
    const expectedSame = r.expectedDifference === null;
    let verdict: string;
    if (same)
      verdict = expectedSame
        ? 'same'
        : `UNEXPECTED: same, expected a difference (${r.expectedDifference})`;
    else verdict = expectedSame ? 'UNEXPECTED: differs' : `differs: ${r.expectedDifference}`;
    return { ...r, verdict, unexpected: same !== expectedSame };
  });
}

/**
 * The batch-independent norms (issue 22). GroupNorm with groups: 1 is layer normalization over
 * every non-batch axis, so it must equal tf.layers.layerNormalization({axis: [1, 2, 3]}) (its γ, β
 * given the GroupNorm's per-channel values broadcast over the positions; LN's dγ, dβ summed over
 * the positions are GroupNorm's); groups: C (-1) is instance norm, checked against the formula
 * computed by hand with tf ops (Ulyanov et al. 2016, Eq. 2); RMSNorm against Keras 3's formula.
 */
function normRows(): Row[] {
  const shape = [8, 5, 6, 4];
  const channels = shape[3];
  const x = tf.randomNormal(shape, 1, 2, 'float32', 31);
  const dy = tf.randomNormal(shape, 0, 1, 'float32', 32);
  const gamma = tf.randomNormal([channels], 1, 0.3, 'float32', 33);
  const beta = tf.randomNormal([channels], 0, 0.3, 'float32', 34);
  const grads = (f: (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor, args: tf.Tensor[]) =>
    tf.grads((xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(xx, g, b), dy)))(args);
  const rows: Row[] = [];
  const same = (pair: string, property: string, diff: number, tolerance = 1e-5) =>
    rows.push({ pair, property, pack: diff, builtin: 0, tolerance, expectedDifference: null });

  // groups: 1 against the built-in LayerNormalization over the same axes.
  let pair = 'GroupNorm groups: 1 vs tf.layers.layerNormalization axis [1, 2, 3]';
  const gn = dn.layers.groupNorm({ groups: 1 });
  const ln = tf.layers.layerNormalization({ axis: [1, 2, 3] });
  gn.build(shape);
  ln.build(shape);
  gn.setWeights([gamma, beta]);
  ln.setWeights([tf.broadcastTo(gamma, shape.slice(1)), tf.broadcastTo(beta, shape.slice(1))]);
  same(pair, 'output: max |pack − built-in|', maxAbs(apply(gn, x, true), apply(ln, x, true)));
  const viaLayer = (l: AnyLayer) => (xx: tf.Tensor) => apply(l, xx, true);
  const gGn = tf.variableGrads(() => tf.sum(tf.mul(viaLayer(gn)(x), dy)) as tf.Scalar);
  const gLn = tf.variableGrads(() => tf.sum(tf.mul(viaLayer(ln)(x), dy)) as tf.Scalar);
  const dxOf = (l: AnyLayer) => tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(viaLayer(l)(xx), dy)))(x);
  same(pair, 'gradient dx: max |pack − built-in|', maxAbs(dxOf(gn), dxOf(ln)));
  const [lnGammaVar, lnBetaVar] = ln.trainableWeights;
  const toChannels = (t: tf.Tensor) => tf.sum(t, [0, 1]);
  same(
    pair,
    'gradient dγ: max |pack − built-in summed over positions|',
    maxAbs(gGn.grads[gn.trainableWeights[0].name], toChannels(gLn.grads[lnGammaVar.name])),
    1e-4,
  );
  same(
    pair,
    'gradient dβ: max |pack − built-in summed over positions|',
    maxAbs(gGn.grads[gn.trainableWeights[1].name], toChannels(gLn.grads[lnBetaVar.name])),
    1e-4,
  );

  // groups: C (and -1) against instance norm by hand.
  pair = 'GroupNorm groups: C (instance norm) vs the formula by hand';
  const byHand = (xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
    const { mean, variance } = tf.moments(xx, [1, 2], true);
    return tf.add(tf.mul(tf.div(tf.sub(xx, mean), tf.sqrt(tf.add(variance, 1e-3))), g), b);
  };
  for (const groups of [channels, -1]) {
    const layer = dn.layers.groupNorm({ groups });
    layer.build(shape);
    layer.setWeights([gamma, beta]);
    same(
      pair,
      `groups: ${groups}, output: max |pack − by hand|`,
      maxAbs(apply(layer, x, true), byHand(x, gamma, beta)),
    );
  }
  const fused = grads(
    (xx, g, b) => dn.ops.groupNorm(xx, g, b, 3, channels, 1e-3),
    [x, gamma, beta],
  );
  const hand = grads(byHand, [x, gamma, beta]);
  ['dx', 'dγ', 'dβ'].forEach((name, k) =>
    same(
      pair,
      `gradient ${name}: max |pack − tf.grad of by hand|`,
      maxAbs(fused[k], hand[k]),
      1e-4,
    ),
  );

  // RMSNorm against Keras 3's ops.rms_normalization formula.
  pair = 'RMSNorm vs x·rsqrt(mean(x²) + ε)·scale by hand';
  const scale = tf.randomNormal([channels], 1, 0.3, 'float32', 35);
  const rms = dn.layers.rmsNorm();
  rms.build(shape);
  rms.setWeights([scale]);
  const rmsHand = (xx: tf.Tensor, s: tf.Tensor) =>
    tf.mul(tf.mul(xx, tf.rsqrt(tf.add(tf.mean(tf.square(xx), -1, true), 1e-6))), s);
  same(pair, 'output: max |pack − by hand|', maxAbs(apply(rms, x, true), rmsHand(x, scale)));
  const rg = (f: (xx: tf.Tensor, s: tf.Tensor) => tf.Tensor) =>
    tf.grads((xx: tf.Tensor, s: tf.Tensor) => tf.sum(tf.mul(f(xx, s), dy)))([x, scale]);
  const [rPack, rHand] = [rg((xx, s) => dn.ops.rmsNorm(xx, s, [3], 1e-6)), rg(rmsHand)];
  same(pair, 'gradient dx: max |pack − tf.grad of by hand|', maxAbs(rPack[0], rHand[0]));
  same(pair, 'gradient dscale: max |pack − tf.grad of by hand|', maxAbs(rPack[1], rHand[1]), 1e-4);
  for (const l of [gn, ln, rms]) l.weights.forEach((w) => w.dispose());
  return rows;
}

async function main(): Promise<void> {
  const args = parseArgs({ backend: '', out: 'reports' }, process.argv.slice(2), {
    usage: 'npm run compare -- [--backend cpu|wasm|tensorflow] [--out reports]',
  });
  const backend = await pickBackend(args.backend ? { backend: args.backend } : {});
  const t0 = Date.now();
  const raw: Row[] = [];
  for (const section of [
    dropoutRows,
    spatialRows,
    gaussianRows,
    alphaRows,
    () => batchNormRows('unbiased'),
    () => batchNormDataRows('unbiased'),
    () => batchNormRows('biased'),
    () => batchNormDataRows('biased'),
    normRows,
  ]) {
    tf.tidy(() => {
      raw.push(...section());
    });
  }
  raw.push(...(await frozenRows()));
  const rows = judge(raw);
  const seconds = (Date.now() - t0) / 1000;
  const header = ['pair', 'property', 'pack', 'built-in', 'verdict'];
  const cells = rows.map((r) => [
    r.pair,
    r.property,
    fmt(r.pack, 4),
    fmt(r.builtin, 4),
    r.verdict!,
  ]);
  console.log(formatTable(header, cells));
  const unexpected = rows.filter((r) => r.unexpected);
  const md = [
    '# tfjs-dropnorm vs the tfjs built-ins',
    '',
    `Generated by \`npm run compare\` on the \`${backend}\` backend, tfjs ${tf.version.tfjs}, in ${seconds.toFixed(1)} s.`,
    'Each verdict is computed from the two numbers and the row\'s tolerance; "differs" rows name the reason and the reference.',
    '',
    markdownTable(header, cells),
    '',
    unexpected.length === 0
      ? `All ${rows.length} rows match their expectation.`
      : `**${unexpected.length} row(s) contradict their expectation.**`,
    '',
  ].join('\n');
  const outDir = path.resolve(args.out);
  fs.mkdirSync(outDir, { recursive: true });
  const target = path.join(outDir, 'compare.md');
  fs.writeFileSync(target, md);
  fs.writeFileSync(
    path.join(outDir, 'compare.json'),
    toJson({ backend, tfjs: tf.version.tfjs, seconds, rows }),
  );
  console.log(
    `\n${rows.length} rows, ${unexpected.length} unexpected, ${seconds.toFixed(1)} s → ${target}`,
  );
  if (unexpected.length > 0) process.exitCode = 1;
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
