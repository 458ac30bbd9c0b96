/**
 * The model tools on the per-sample normalizations (issue 22 "Conversion and export", issue 20's
 * tools): GroupNorm, InstanceNorm, AddonsGroupNormalization and RMSNorm (also inside
 * tf.layers.timeDistributed) have no tfjs built-in and nothing to fold (their statistics come from
 * each input), so exportForInference keeps them and lists them in `kept`, convertToBuiltins lists
 * them in `skipped`, foldBatchNorm folds no BatchNorm into them, saveForInference quantizes the
 * linear layers around them, and mcPredict runs through them. Every model a tool returns is
 * predicted and compared with the original.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import * as dn from 'tfjs-dropnorm';
import { fileSystem } from 'tfjs-dropnorm/node';
import { PER_SAMPLE_REASON } from '../src/model/no_builtin';
import { predict, randn, randomizeBatchNorms, relativeDiff } from './fold_helpers';
import { maxAbsDiff } from './helpers';
import { predictElsewhere } from './plain_tfjs';

const apply = (layer: tf.layers.Layer, t: tf.SymbolicTensor) => layer.apply(t) as tf.SymbolicTensor;
const KEPT = `${PER_SAMPLE_REASON}: kept as the pack's layer, so the export needs the pack registered to load`;
const SKIPPED = `${PER_SAMPLE_REASON}; kept as the pack's layer`;

/** Seeded, non-trivial γ/β/scale for every normalization (also inside wrappers). */
function randomizeNorms(model: tf.LayersModel, seed: number): void {
  const visit = (layer: tf.layers.Layer): void => {
    const inner = (layer as unknown as { layer?: tf.layers.Layer }).layer;
    if (inner instanceof tf.layers.Layer) visit(inner);
    if (
      !['GroupNorm', 'InstanceNorm', 'RMSNorm', 'AddonsGroupNormalization'].includes(
        (layer.constructor as { publicName?: string }).publicName ?? '',
      )
    )
      return;
    const values = layer
      .getWeights()
      .map((w, i) =>
        tf.tidy(() =>
          tf.add(tf.randomNormal(w.shape, 0, 0.3, 'float32', seed++ + i), i === 0 ? 1 : 0),
        ),
      );
    layer.setWeights(values);
    tf.dispose(values);
  };
  model.layers.forEach(visit);
}

/**
 * conv → GroupNorm(2 groups) → relu → InstanceNorm → TimeDistributed(RMSNorm) → Addons GroupNorm →
 * flatten → dense → RMSNorm → dropout → dense(softmax).
 */
function normsModel(rate = 0.3): tf.LayersModel {
  const x = tf.input({ shape: [4, 4, 3] });
  let h = apply(tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', name: 'conv' }), x);
  h = apply(dn.layers.groupNorm({ groups: 2, name: 'gn' }), h);
  h = apply(tf.layers.reLU({ name: 'relu' }), h);
  h = apply(dn.layers.instanceNorm({ name: 'in' }), h);
  h = apply(
    tf.layers.timeDistributed({ layer: dn.layers.rmsNorm({ name: 'rms_inner' }), name: 'td' }),
    h,
  );
  h = apply(new dn.AddonsGroupNormalization({ groups: 4, name: 'agn' }), h);
  h = apply(tf.layers.flatten({ name: 'flat' }), h);
  h = apply(tf.layers.dense({ units: 6, name: 'dense' }), h);
  h = apply(dn.layers.rmsNorm({ name: 'rms' }), h);
  h = apply(dn.layers.dropout({ rate, name: 'drop' }), h);
  h = apply(tf.layers.dense({ units: 3, activation: 'softmax', name: 'out' }), h);
  const model = tf.model({ inputs: x, outputs: h });
  randomizeNorms(model, 5);
  return model;
}

const NORM_PATHS: [string, string][] = [
  ['gn', 'GroupNormalization'],
  ['in', 'Addons>InstanceNormalization'],
  ['td/rms_inner', 'RMSNormalization'],
  ['agn', 'Addons>GroupNormalization'],
  ['rms', 'RMSNormalization'],
];

/** A save handler that keeps the artifacts in memory. */
function memory() {
  const box: { artifacts: tf.io.ModelArtifacts | null } = { artifacts: null };
  const handler = tf.io.withSaveHandler(async (a) => {
    box.artifacts = a;
    return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
  });
  return { handler, box };
}

describe('exportForInference keeps the per-sample normalizations', () => {
  test('each is kept and listed in kept with the reason; the export predicts as the model', async () => {
    const model = normsModel();
    const input = randn([2, 4, 4, 3], 11, 0.5, 2);
    const exported = dn.exportForInference(model);
    expect(exported.kept.map((k) => [k.layer, k.className, k.reason])).toEqual(
      NORM_PATHS.map(([p, c]) => [p, c, KEPT]),
    );
    expect(exported.skipped).toEqual([]);
    expect(exported.removed.map((r) => r.layer)).toEqual(['drop']);
    const reference = predict(model, input);
    const y = predict(exported.model, input);
    const diff = maxAbsDiff(y, reference);
    console.log(`exportForInference: max |export − model| = ${diff.toExponential(2)}`);
    expect(diff).toBeLessThanOrEqual(1e-6);

    // The saved export loads with the pack imported (its classes registered) and predicts the same.
    const { handler, box } = memory();
    await exported.model.save(handler);
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(box.artifacts!));
    const names = loaded.layers.map((l) => l.getClassName());
    expect(names).toEqual(expect.arrayContaining(['GroupNormalization', 'RMSNormalization']));
    const z = predict(loaded, input);
    expect(maxAbsDiff(z, reference)).toBeLessThanOrEqual(1e-6);

    // What `kept` warns of: plain tfjs (no import of the pack) cannot load it.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dropnorm-norms-'));
    try {
      await exported.model.save(fileSystem(dir));
      expect(() => predictElsewhere([{ name: 'norms', dir, x: input }])).toThrow(
        /Unknown layer: GroupNormalization/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    tf.dispose([input, reference, y, z]);
    [model, exported.model, loaded].forEach((m) => m.dispose());
  });

  test('convertToBuiltins leaves them and lists them in skipped with the reason', () => {
    const model = normsModel();
    const input = randn([2, 4, 4, 3], 12);
    const converted = dn.convertToBuiltins(model);
    const skipped = converted.skipped.map((s) => [s.layer, s.reason]);
    for (const [p] of NORM_PATHS) expect(skipped).toContainEqual([p, SKIPPED]);
    // The dropout became tfjs's; the normalizations are still the pack's classes.
    const classes = converted.model.layers.map((l) => l.getClassName());
    expect(classes).toEqual(expect.arrayContaining(['GroupNormalization', 'Dropout']));
    expect(classes).not.toContain('DropnormDropout');
    const a = predict(model, input);
    const b = predict(converted.model, input);
    expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(1e-6);
    tf.dispose([input, a, b]);
    model.dispose();
    converted.model.dispose();
  });
});

describe('foldBatchNorm and the per-sample normalizations', () => {
  test('a BatchNorm after a GroupNorm does not fold into it; one after the conv does', () => {
    const x = tf.input({ shape: [5, 5, 2] });
    let h = apply(tf.layers.conv2d({ filters: 4, kernelSize: 3, name: 'conv' }), x);
    h = apply(dn.layers.batchNorm({ name: 'bn_conv' }), h);
    h = apply(dn.layers.groupNorm({ groups: 2, name: 'gn' }), h);
    h = apply(dn.layers.batchNorm({ name: 'bn_gn' }), h);
    h = apply(tf.layers.reLU(), h);
    const model = tf.model({ inputs: x, outputs: h });
    randomizeBatchNorms(model, 3);
    randomizeNorms(model, 4);
    // Copies: getWeights returns the variables' own tensors.
    const gnWeights = model
      .getLayer('gn')
      .getWeights()
      .map((w) => w.clone());
    const input = randn([3, 5, 5, 2], 13);
    const folded = dn.foldBatchNorm(model);
    expect(folded.folded).toEqual([{ batchNorm: 'bn_conv', into: 'conv', direction: 'backward' }]);
    expect(folded.skipped.map((s) => s.batchNorm)).toEqual(['bn_gn']);
    expect(folded.skipped[0].reason).toMatch(
      /^cannot fold into the preceding layer: the preceding layer GroupNorm 'gn' is not one of Dense,/,
    );
    // The GroupNorm is there, with its weights unchanged.
    const gn = folded.model.getLayer('gn');
    expect(gn.getClassName()).toBe('GroupNormalization');
    gn.getWeights().forEach((w, i) => expect(maxAbsDiff(w, gnWeights[i])).toBe(0));
    const a = predict(model, input);
    const b = predict(folded.model, input);
    expect(relativeDiff(b, a)).toBeLessThan(1e-5);
    tf.dispose([input, a, b, ...gnWeights]);
    model.dispose();
    folded.model.dispose();
  });
});

describe('saveForInference on a model with per-sample normalizations', () => {
  test('quantizes the conv/dense weights to uint8, keeps the norms, loads with the pack', async () => {
    const model = normsModel();
    const calibration = randn([8, 4, 4, 3], 14, 0.5, 2);
    const { handler, box } = memory();
    const before = tf.memory().numTensors;
    const result = await dn.saveForInference(model, handler, { quantize: 'uint8', calibration });
    expect(tf.memory().numTensors).toBe(before);
    expect(result.kept.map((k) => [k.layer, k.reason])).toEqual(NORM_PATHS.map(([p]) => [p, KEPT]));
    const format = new Map(result.weights.map((w) => [w.name, w.dtype]));
    console.log(
      JSON.stringify(result.weights.map((w) => [w.name, w.dtype, +w.relativeError.toFixed(4)])),
    );
    expect(format.get('conv/kernel')).toBe('uint8');
    expect(format.get('dense/kernel')).toBe('uint8');
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(box.artifacts!));
    const a = predict(model, calibration);
    const b = predict(loaded, calibration);
    // γ/β/scale decode close to their float values (uint8 over their own range).
    for (const [p] of NORM_PATHS.filter(([q]) => !q.includes('/'))) {
      const orig = model.getLayer(p).getWeights();
      const saved = loaded.getLayer(p).getWeights();
      orig.forEach((w, i) => expect(relativeDiff(saved[i], w)).toBeLessThan(1e-3));
    }
    console.log(
      `saveForInference uint8: max |saved − float| = ${maxAbsDiff(a, b).toExponential(2)}, ` +
        `ratio ${result.ratio.toFixed(3)}`,
    );
    expect(maxAbsDiff(a, b)).toBeLessThan(0.05);
    tf.dispose([calibration, a, b]);
    model.dispose();
    loaded.dispose();
  });
});

describe('mcPredict on a model with per-sample normalizations', () => {
  test('runs through them: seeded and reproducible, the dropout its only stochastic layer', () => {
    const model = normsModel();
    const input = randn([3, 4, 4, 3], 15);
    const before = tf.memory().numTensors;
    const r1 = dn.mcPredict<tf.Tensor>(model, input, { samples: 20, seed: 7 });
    const r2 = dn.mcPredict<tf.Tensor>(model, input, { samples: 20, seed: 7 });
    const r3 = dn.mcPredict<tf.Tensor>(model, input, { samples: 20, seed: 8 });
    expect(r1.stochasticLayers).toEqual(['drop']);
    expect(r1.mean.shape).toEqual([3, 3]);
    expect(maxAbsDiff(r1.mean, r2.mean)).toBe(0);
    expect(maxAbsDiff(r1.mean, r3.mean)).toBeGreaterThan(0);
    const [spread, rowSum] = tf.tidy(() => [
      r1.variance.max().dataSync()[0],
      tf
        .abs(tf.sub(r1.mean.sum(-1), 1))
        .max()
        .dataSync()[0],
    ]);
    expect(spread).toBeGreaterThan(1e-8);
    expect(rowSum).toBeLessThan(1e-5); // a mean of softmax rows
    tf.dispose([r1.mean, r1.variance, r2.mean, r2.variance, r3.mean, r3.variance]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(input);
    model.dispose();
  });

  test('with the dropout at rate 0 every pass is predict: the norms run the same in the passes', () => {
    const model = normsModel(0);
    const input = randn([3, 4, 4, 3], 16);
    const r = dn.mcPredict<tf.Tensor>(model, input, { samples: 4, seed: 1 });
    const det = predict(model, input);
    expect(maxAbsDiff(r.mean, det)).toBeLessThan(1e-6);
    expect(tf.tidy(() => r.variance.max().dataSync()[0])).toBeLessThan(1e-12);
    tf.dispose([r.mean, r.variance, det, input]);
    model.dispose();
  });
});
