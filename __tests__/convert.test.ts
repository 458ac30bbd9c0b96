import * as tf from '@tensorflow/tfjs';
import {
  BatchNorm,
  ConvertToDropnormOptions,
  Dropout,
  CUMULATIVE_FALLBACK_MOMENTUM,
  PACK_CLASS_NAMES,
  StochasticLayer,
  convertToBuiltins,
  convertToDropnorm,
  layers as dn,
  mcPredict,
} from 'tfjs-dropnorm';
import { leakedTensors, maxAbsDiff } from './helpers';
import {
  classNamesInJson,
  predict,
  randn,
  randomizeBatchNorms,
  snapshotWeights,
} from './fold_helpers';

function builtinCnn(): tf.LayersModel {
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, activation: 'relu' }),
      tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-2 }),
      tf.layers.flatten(),
      tf.layers.dropout({ rate: 0.3, seed: 7, noiseShape: [1, 48] }),
      tf.layers.dense({ units: 4 }),
      tf.layers.batchNormalization({ center: false }),
    ],
  });
  randomizeBatchNorms(model, 1);
  return model;
}

describe('convertToDropnorm / convertToBuiltins', () => {
  it('swaps the built-in BatchNormalization for the pack BatchNorm with config and weights', () => {
    const model = builtinCnn();
    const { model: converted } = convertToDropnorm(model);
    const bns = converted.layers.filter((l) => l instanceof BatchNorm) as BatchNorm[];
    expect(bns.length).toBe(2);
    expect(bns[0].momentum).toBe(0.9);
    expect(bns[0].epsilon).toBe(1e-2);
    expect(bns[0].varianceCorrection).toBe('unbiased');
    expect(bns[1].center).toBe(false);
    expect(classNamesInJson(converted)).not.toContain('BatchNormalization');
    expect(snapshotWeights(converted)).toEqual(snapshotWeights(model));
    const { model: biased } = convertToDropnorm(model, { varianceCorrection: 'biased' });
    expect(
      (biased.layers.find((l) => l instanceof BatchNorm) as BatchNorm).varianceCorrection,
    ).toBe('biased');
  });

  it('swaps the built-in Dropout for the pack Dropout and back, keeping rate, noiseShape, seed', () => {
    const { model: ours } = convertToDropnorm(builtinCnn());
    const drop = ours.layers.find((l) => l.getClassName() === Dropout.className) as Dropout;
    expect(drop).toBeInstanceOf(Dropout);
    expect([drop.rate, drop.seed, drop.noiseShape, drop.mode]).toEqual([
      0.3,
      7,
      [1, 48],
      'inverted',
    ]);
    const back = convertToBuiltins(ours).model.layers.find((l) => l.getClassName() === 'Dropout')!;
    expect(back.getConfig()).toMatchObject({ rate: 0.3, seed: 7, noiseShape: [1, 48] });
    const unseeded = convertToBuiltins(
      tf.sequential({ layers: [dn.dropout({ inputShape: [3], rate: 0.2 })] }),
    ).model.layers[1].getConfig();
    expect(unseeded.rate).toBe(0.2);
    expect(unseeded.seed).toBeUndefined();
  });

  it('keeps a classic-mode Dropout, listed in skipped with the reason', () => {
    const model = tf.sequential({
      layers: [dn.dropout({ inputShape: [3], rate: 0.2, mode: 'classic', name: 'classic_drop' })],
    });
    const result = convertToBuiltins(model);
    expect(result.converted).toEqual([]);
    expect(result.skipped).toEqual([
      {
        layer: 'classic_drop',
        className: 'DropnormDropout',
        reason: expect.stringMatching(/mode is 'classic'.*no classic mode/),
      },
    ]);
    expect(result.model.layers[1]).toBeInstanceOf(Dropout);
    expect((result.model.layers[1] as Dropout).mode).toBe('classic');
  });

  it('round trips give identical predictions, and the input model is untouched', () => {
    const model = builtinCnn();
    const x = randn([3, 6, 6, 2], 2);
    const before = predict(model, x).dataSync().slice();
    const weights = snapshotWeights(model);
    const { model: ours } = convertToDropnorm(model);
    expect(predict(ours, x).dataSync()).toEqual(before);
    const { model: back, skipped } = convertToBuiltins(ours);
    expect(skipped).toEqual([]);
    expect(predict(back, x).dataSync()).toEqual(before);
    expect(classNamesInJson(back).filter((n) => PACK_CLASS_NAMES.includes(n))).toEqual([]);
    expect(snapshotWeights(back)).toEqual(weights);
    expect(snapshotWeights(model)).toEqual(weights);
    expect(predict(model, x).dataSync()).toEqual(before);
  });

  it('drops num_batches_tracked and replaces momentum null when converting back', () => {
    const model = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [3], units: 4 }), dn.batchNorm({ momentum: null })],
    });
    randomizeBatchNorms(model, 3);
    expect(model.layers[1].getWeights().length).toBe(5);
    const x = randn([5, 3], 4);
    const { model: back, converted } = convertToBuiltins(model);
    expect(converted[0].note).toMatch(/momentum null \(cumulative average\) became 0.99/);
    const bn = back.layers[2];
    expect(bn.getClassName()).toBe('BatchNormalization');
    expect(bn.getWeights().length).toBe(4);
    expect(bn.getConfig().momentum).toBe(CUMULATIVE_FALLBACK_MOMENTUM);
    expect(predict(back, x).dataSync()).toEqual(predict(model, x).dataSync());
  });

  it('keeps a channels-first BN as the pack layer, listed in skipped (tfjs#1106)', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({
          inputShape: [2, 4, 4],
          filters: 3,
          kernelSize: 3,
          dataFormat: 'channelsFirst',
        }),
        dn.batchNorm({ axis: 1, name: 'cf_bn' }),
      ],
    });
    const { model: kept, skipped, converted } = convertToBuiltins(model);
    expect(converted).toEqual([]);
    expect(skipped.map((s) => [s.layer, s.className])).toEqual([['cf_bn', 'DropnormBatchNorm']]);
    expect(skipped[0].reason).toMatch(/channel axis 1 is not the last axis.*tfjs#1106/);
    expect(kept.layers[2]).toBeInstanceOf(BatchNorm);
  });

  it('rejects what is not a LayersModel', () => {
    expect(() => convertToDropnorm('model' as unknown as tf.LayersModel)).toThrow(
      /convertToDropnorm: expected model to be a tf.LayersModel/,
    );
    expect(() => convertToBuiltins(undefined as unknown as tf.LayersModel)).toThrow(
      /convertToBuiltins: expected model to be a tf.LayersModel/,
    );
    expect(() =>
      convertToDropnorm(builtinCnn(), { varianceCorrection: 'none' as 'biased' }),
    ).toThrow(/varianceCorrection to be 'unbiased' or 'biased'/);
  });
});

/** Class names of every layer in the model's JSON, nested models included. */
function allClassNames(model: tf.LayersModel): string[] {
  type Json = { class_name: string; config: { layers?: Json[] } };
  const walk = (layers: Json[]): string[] =>
    layers.flatMap((l) => [l.class_name, ...walk(l.config.layers ?? [])]);
  const json = model.toJSON(null, false) as unknown as Json;
  return walk(json.config.layers ?? []);
}

/** Every layer, nested models included. */
function allLayers(model: tf.LayersModel): tf.layers.Layer[] {
  return model.layers.flatMap((l) => [l, ...(l instanceof tf.LayersModel ? allLayers(l) : [])]);
}

/** A built-in model with every convertible kind: a Sequential nested in a two-input, two-output model. */
function builtinNested(): tf.LayersModel {
  const inner = tf.sequential({
    name: 'inner',
    layers: [
      tf.layers.dense({ units: 6, inputShape: [5], name: 'inner_dense' }),
      tf.layers.batchNormalization({ name: 'inner_bn' }),
      tf.layers.gaussianDropout({ rate: 0.2, name: 'inner_gauss' }),
      tf.layers.alphaDropout({ rate: 0.1, name: 'inner_alpha' }),
    ],
  });
  randomizeBatchNorms(inner, 11);
  const a = tf.input({ shape: [5], name: 'a' });
  const b = tf.input({ shape: [4, 3], name: 'b' });
  const ha = tf.layers.dropout({ rate: 0.3, name: 'outer_drop' }).apply(inner.apply(a));
  const hb = tf.layers
    .spatialDropout1d({ rate: 0.2, name: 'outer_spatial' })
    .apply(tf.layers.batchNormalization({ name: 'outer_bn' }).apply(b));
  const flat = tf.layers.flatten().apply(hb) as tf.SymbolicTensor;
  const joined = tf.layers.concatenate().apply([ha as tf.SymbolicTensor, flat]);
  const model = tf.model({
    inputs: [a, b],
    outputs: [
      tf.layers.dense({ units: 2, name: 'head_a' }).apply(joined) as tf.SymbolicTensor,
      tf.layers.dense({ units: 3, name: 'head_b' }).apply(joined) as tf.SymbolicTensor,
    ],
  });
  randomizeBatchNorms(model, 12);
  return model;
}

describe('conversion reaches every layer (nested models, every kind)', () => {
  it('converts a nested built-in model (the issue repro): every layer, listed with its path', () => {
    const model = builtinNested();
    const { model: ours, converted, skipped } = convertToDropnorm(model);
    expect(skipped).toEqual([]);
    expect(converted.map((c) => [c.layer, c.from, c.to]).sort()).toEqual(
      [
        ['inner/inner_bn', 'BatchNormalization', 'DropnormBatchNorm'],
        ['inner/inner_gauss', 'GaussianDropout', 'DropnormGaussianDropout'],
        ['inner/inner_alpha', 'AlphaDropout', 'DropnormAlphaDropout'],
        ['outer_drop', 'Dropout', 'DropnormDropout'],
        ['outer_bn', 'BatchNormalization', 'DropnormBatchNorm'],
        ['outer_spatial', 'SpatialDropout1D', 'DropnormSpatialDropout1D'],
      ].sort(),
    );
    const builtinKinds = [
      'BatchNormalization',
      'Dropout',
      'SpatialDropout1D',
      'GaussianDropout',
      'AlphaDropout',
    ];
    expect(allClassNames(ours).filter((n) => builtinKinds.includes(n))).toEqual([]);
    expect(allClassNames(model).filter((n) => PACK_CLASS_NAMES.includes(n))).toEqual([]);
    // The built-in AlphaDropout trains wrongly: its conversion says that training changes.
    const alpha = converted.find((c) => c.from === 'AlphaDropout')!;
    expect(alpha.note).toMatch(/training behaviour changes.*\+λα.*−λα/);
    ours.dispose();
    model.dispose();
  });

  it('round trips are bit-identical at inference on a nested, two-input, two-output model', () => {
    const model = builtinNested();
    const x = [randn([7, 5], 21), randn([7, 4, 3], 22)];
    const reference = (model.predict(x) as tf.Tensor[]).map((t) => t.dataSync().slice());
    const weights = snapshotWeights(model);
    const { model: ours } = convertToDropnorm(model);
    const { model: back, converted, skipped } = convertToBuiltins(ours);
    expect(skipped).toEqual([]);
    expect(converted.length).toBe(6);
    expect(allClassNames(back).filter((n) => PACK_CLASS_NAMES.includes(n))).toEqual([]);
    for (const m of [ours, back, model]) {
      const out = m.predict(x) as tf.Tensor[];
      out.forEach((t, i) => expect(t.dataSync()).toEqual(reference[i]));
      tf.dispose(out);
    }
    expect(snapshotWeights(back)).toEqual(weights);
    expect(snapshotWeights(model)).toEqual(weights);
    [ours, back, model].forEach((m) => m.dispose());
    tf.dispose(x);
  });

  it('converts a built-in GaussianDropout (the issue repro), so mcPredict samples it', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ units: 4, inputShape: [3] }),
        tf.layers.gaussianDropout({ rate: 0.3, name: 'g' }),
      ],
    });
    const { model: ours, converted } = convertToDropnorm(model);
    expect(converted).toEqual([
      { layer: 'g', from: 'GaussianDropout', to: 'DropnormGaussianDropout' },
    ]);
    const { mean, variance } = mcPredict<tf.Tensor>(ours, randn([5, 3], 3), {
      samples: 4,
      seed: 1,
    });
    expect(tf.tidy(() => tf.min(variance).dataSync()[0])).toBeGreaterThan(0);
    tf.dispose([mean, variance]);
    ours.dispose();
    model.dispose();
  });

  it('convertToBuiltins converts the pack Gaussian and Alpha dropout (no longer kept silently)', () => {
    const model = tf.sequential({
      layers: [
        dn.gaussianDropout({ rate: 0.2, inputShape: [3], seed: 4, name: 'pg' }),
        dn.alphaDropout({ rate: 0.1, name: 'pa' }),
      ],
    });
    const { model: back, converted, skipped } = convertToBuiltins(model);
    expect(skipped).toEqual([]);
    expect(converted.map((c) => [c.layer, c.to])).toEqual([
      ['pg', 'GaussianDropout'],
      ['pa', 'AlphaDropout'],
    ]);
    expect(converted[0].note).toMatch(/no seed/);
    expect(converted[1].note).toMatch(/training is not.*\+λα/);
    expect(back.layers.slice(1).map((l) => l.getConfig().rate)).toEqual([0.2, 0.1]);
    back.dispose();
    model.dispose();
  });

  it('lists every pack layer left as it was, with the reason', () => {
    const input = tf.input({ shape: [6, 6, 2] });
    let h = dn.spatialDropout2d({ rate: 0.1, name: 's2' }).apply(input) as tf.SymbolicTensor;
    h = dn.dropBlock2d({ rate: 0.1, blockSize: 3, name: 'db' }).apply(h) as tf.SymbolicTensor;
    h = dn.dropPath({ rate: 0.1, name: 'dp' }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.reshape({ targetShape: [36, 2] }).apply(h) as tf.SymbolicTensor;
    h = dn
      .spatialDropout1d({ rate: 0.1, dataFormat: 'channelsFirst', name: 's1cf' })
      .apply(h) as tf.SymbolicTensor;
    h = tf.layers.flatten().apply(h) as tf.SymbolicTensor;
    h = dn.dropConnectDense({ units: 3, rate: 0.1, name: 'dc' }).apply(h) as tf.SymbolicTensor;
    h = dn.dropout({ rate: 0.1, mcDropout: true, name: 'mc' }).apply(h) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: h });
    const { model: kept, converted, skipped } = convertToBuiltins(model);
    expect(converted).toEqual([]);
    const reasons = Object.fromEntries(skipped.map((s) => [s.layer, s.reason]));
    expect(Object.keys(reasons)).toEqual(['s2', 'db', 'dp', 's1cf', 'dc', 'mc']);
    expect(reasons.s2).toMatch(/no SpatialDropout2D/);
    expect(reasons.db).toMatch(/no DropBlock/);
    expect(reasons.dp).toMatch(/no DropPath/);
    expect(reasons.s1cf).toMatch(/channelsFirst.*channels-last only/);
    expect(reasons.dc).toMatch(/no DropConnect/);
    expect(reasons.mc).toMatch(/mcDropout is true.*identity in predict/);
    expect(allClassNames(kept)).toEqual(allClassNames(model));
    kept.dispose();
    model.dispose();
  });

  it('convertToDropnorm({mcDropout: true}) makes the converted dropout layers always stochastic', () => {
    const model = builtinNested();
    const { model: ours } = convertToDropnorm(model, { mcDropout: true });
    const drops = allLayers(ours).filter((l) => l instanceof StochasticLayer) as StochasticLayer[];
    expect(drops.length).toBe(4);
    expect(drops.every((l) => l.mcDropout)).toBe(true);
    const x = [randn([3, 5], 1), randn([3, 4, 3], 2)];
    const [p1, p2] = [ours.predict(x), ours.predict(x)] as tf.Tensor[][];
    expect(maxAbsDiff(p1[0], p2[0])).toBeGreaterThan(0);
    tf.dispose([...p1, ...p2, ...x]);
    ours.dispose();
    model.dispose();
  });

  it('rejects unknown and invalid options, leaks nothing', async () => {
    const model = builtinNested();
    expect(() =>
      convertToDropnorm(model, {
        variance_correction: 'biased',
      } as unknown as ConvertToDropnormOptions),
    ).toThrow(/unknown option 'variance_correction' \(did you mean 'varianceCorrection'\?\)/);
    expect(() =>
      convertToDropnorm(model, { mcDropout: 1 } as unknown as ConvertToDropnormOptions),
    ).toThrow(/expected options.mcDropout to be true or false, received: options.mcDropout=1/);
    const leaked = await leakedTensors(() => {
      const a = convertToDropnorm(model);
      const b = convertToBuiltins(a.model);
      a.model.dispose();
      b.model.dispose();
    });
    expect(leaked).toBe(0);
    model.dispose();
  });
});
