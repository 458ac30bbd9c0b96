import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import * as dn from 'tfjs-dropnorm';
import { fileSystem } from 'tfjs-dropnorm/node';
import { inceptionLike, mobileNetV2Like, randomizeBatchNormStatistics } from '../bench/models';
import { maxAbsDiff } from './helpers';
import { predictElsewhere } from './plain_tfjs';

/**
 * exportForInference: the result holds tfjs built-in classes only, loads and runs in a Node
 * process that never imports the pack, and computes what the original computes (≤ 1e-5), on
 * pretrained-style models (MobileNetV2, Inception) and on a model holding every layer of the pack.
 */
const TOL = 1e-5;

const input = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);
const predict = (m: tf.LayersModel, x: tf.Tensor) => m.predict(x) as tf.Tensor;
/** Error relative to the reference's scale (1 for probabilities). */
const relative = (a: tf.Tensor, b: tf.Tensor) =>
  maxAbsDiff(a, b) /
  Math.max(
    1,
    tf.tidy(() => tf.max(tf.abs(b)).dataSync()[0]),
  );

/** Every class of the model's JSON, nested models included: what a loader has to know. */
function classNames(model: tf.LayersModel): string[] {
  const names: string[] = [];
  const walk = (config: { layers?: Array<{ class_name: string; config: unknown }> }) => {
    for (const l of config.layers ?? []) {
      names.push(l.class_name);
      walk(l.config as typeof config);
    }
  };
  walk((model.toJSON(null, false) as { config: never }).config);
  return names;
}

/** A snapshot of everything a transform could change in place: topology and weight values. */
function snapshot(model: tf.LayersModel): string {
  return JSON.stringify([
    model.toJSON(null, false),
    model.getWeights().map((w) => Array.from(w.dataSync())),
  ]);
}

/** A model with every layer of the pack, placed so each export path is taken. */
function packModel(): tf.LayersModel {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const x = tf.input({ shape: [8, 8, 3], name: 'x' });
  const apply = (l: tf.layers.Layer, t: tf.SymbolicTensor) => l.apply(t) as tf.SymbolicTensor;
  let h = apply(
    tf.layers.conv2d({
      filters: 4,
      kernelSize: 3,
      padding: 'same',
      useBias: false,
      kernelInitializer: init(1),
      name: 'c1',
    }),
    x,
  );
  h = apply(dn.layers.dropout({ rate: 0.3, name: 'inverted' }), h); // between conv and BN
  h = apply(dn.layers.batchNorm({ momentum: null, name: 'bn_folds' }), h);
  h = apply(tf.layers.reLU({ name: 'relu1' }), h);
  h = apply(dn.layers.spatialDropout2d({ rate: 0.2, name: 'spatial' }), h);
  h = apply(
    tf.layers.conv2d({
      filters: 6,
      kernelSize: 3,
      activation: 'relu',
      kernelInitializer: init(2),
      biasInitializer: tf.initializers.randomNormal({ mean: 0.2, stddev: 0.5, seed: 6 }),
      name: 'c2',
    }),
    h,
  );
  h = apply(dn.layers.dropout({ rate: 0.5, mode: 'classic', name: 'classic_back' }), h);
  h = apply(dn.layers.dropBlock2d({ rate: 0.1, blockSize: 2, name: 'dropblock' }), h);
  h = apply(dn.layers.batchNorm({ name: 'bn_last' }), h); // after a ReLU conv, before a ReLU: stays
  h = apply(tf.layers.reLU({ name: 'relu2' }), h);
  h = apply(dn.layers.dropPath({ rate: 0.1, name: 'droppath' }), h);
  h = apply(tf.layers.globalAveragePooling2d({ name: 'gap' }), h);
  h = apply(dn.layers.dropout({ rate: 0.25, mode: 'classic', name: 'classic_fwd' }), h);
  h = apply(
    dn.layers.dropConnectDense({
      units: 8,
      rate: 0.5,
      activation: 'tanh',
      kernelInitializer: init(3),
      name: 'dcd',
    }),
    h,
  );
  h = apply(dn.layers.gaussianDropout({ rate: 0.2, name: 'gauss' }), h);
  h = apply(tf.layers.alphaDropout({ rate: 0.1, name: 'alpha_builtin' }), h);
  h = apply(tf.layers.reshape({ targetShape: [2, 4], name: 'reshape' }), h);
  h = apply(dn.layers.batchNorm({ axis: 1, name: 'bn_first' }), h); // channels-first, cannot fold
  h = apply(dn.layers.dropout({ rate: 0.1, mode: 'classic', name: 'classic_rescale' }), h);
  h = apply(tf.layers.flatten({ name: 'flatten' }), h);
  h = apply(tf.layers.gaussianNoise({ stddev: 0.1, name: 'noise_builtin' }), h);
  h = apply(dn.layers.alphaDropout({ rate: 0.1, name: 'alpha' }), h);
  h = apply(tf.layers.dropout({ rate: 0.2, name: 'dropout_builtin' }), h);
  h = apply(tf.layers.dense({ units: 3, kernelInitializer: init(4), name: 'out' }), h);
  const model = tf.model({ inputs: x, outputs: h, name: 'pack_model' });
  randomizeBatchNormStatistics(model, 5);
  // A cumulative BN carries its batch count as a fifth weight.
  const bn = model.getLayer('bn_folds');
  bn.setWeights([...bn.getWeights().slice(0, 4), tf.scalar(7)]);
  return model;
}

describe('exportForInference', () => {
  let dir = '';
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dropnorm-export-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('MobileNetV2, Inception and the pack model: built-ins only, the same outputs in a process without the pack', async () => {
    const cases = [
      {
        name: 'mobilenetv2',
        model: mobileNetV2Like({ inputSize: 32, alpha: 0.35, classes: 10 }),
        x: input([2, 32, 32, 3], 1),
      },
      { name: 'inception', model: inceptionLike({ inputSize: 32 }), x: input([2, 32, 32, 3], 2) },
      { name: 'pack', model: packModel(), x: input([3, 8, 8, 3], 3) },
    ];
    const jobs = [];
    const results: Record<string, dn.ExportForInferenceResult> = {};
    for (const c of cases) {
      const before = snapshot(c.model);
      const result = dn.exportForInference(c.model);
      expect(snapshot(c.model)).toBe(before); // the input is untouched
      results[c.name] = result;
      const classes = classNames(result.model);
      expect([c.name, classes.filter((n) => n.startsWith('Dropnorm'))]).toEqual([c.name, []]);
      expect([c.name, relative(predict(result.model, c.x), predict(c.model, c.x))]).toEqual([
        c.name,
        expect.any(Number),
      ]);
      expect(relative(predict(result.model, c.x), predict(c.model, c.x))).toBeLessThanOrEqual(TOL);
      await result.model.save(fileSystem(path.join(dir, c.name)));
      jobs.push({ name: c.name, dir: path.join(dir, c.name), x: c.x });
    }

    const elsewhere = predictElsewhere(jobs);
    for (const c of cases) {
      const theirs = elsewhere[c.name];
      expect(theirs.packLoaded).toBe(false);
      const reference = predict(c.model, c.x);
      const y = tf.tensor(theirs.y, reference.shape);
      expect([c.name, relative(y, reference) <= TOL]).toEqual([c.name, true]);
    }

    // MobileNetV2: 52 BNs fold backward, Dropout goes; the ReLU6 layers stay (see fuseActivations).
    const mobile = results.mobilenetv2;
    expect(
      cases[0].model.layers.filter((l) => l.getClassName() === 'BatchNormalization'),
    ).toHaveLength(52);
    expect(mobile.folded).toHaveLength(52);
    expect(mobile.folded.every((f) => f.direction === 'backward')).toBe(true);
    expect(mobile.skipped).toEqual([]);
    expect(mobile.replaced).toEqual([]);
    expect(mobile.removed).toEqual([
      { layer: 'dropout', className: 'Dropout', reason: 'the identity at inference' },
    ]);
    expect(classNames(mobile.model)).not.toContain('BatchNormalization');
    expect(elsewhere.mobilenetv2.classes.length).toBe(158 - 52 - 1);

    // Inception: BNs without scale (γ = 1) fold too, and the ReLU Activations fuse.
    const inception = results.inception;
    expect(inception.folded).toHaveLength(2 + 2 * 7);
    expect(inception.removed.filter((r) => r.className === 'Activation')).toHaveLength(16);
    expect(inception.skipped).toEqual([]);
    expect(elsewhere.inception.classes).not.toContain('BatchNormalization');

    // The pack model: each path, reported.
    const pack = results.pack;
    expect(pack.folded).toEqual([{ batchNorm: 'bn_folds', into: 'c1', direction: 'backward' }]);
    expect(pack.skipped).toEqual([]);
    expect(Object.fromEntries(pack.removed.map((r) => [r.layer, r.into ?? r.reason]))).toEqual({
      inverted: 'the identity at inference',
      spatial: 'the identity at inference',
      dropblock: 'the identity at inference',
      droppath: 'the identity at inference',
      gauss: 'the identity at inference',
      alpha_builtin: 'the identity at inference',
      noise_builtin: 'the identity at inference',
      alpha: 'the identity at inference',
      dropout_builtin: 'the identity at inference',
      classic_back: 'c2', // into the ReLU conv before it: relu(c·z) = c·relu(z)
      classic_fwd: 'dcd', // into the Dense that DropConnectDense became, after that
      relu1: 'c1', // fused as activation 'relu'
    });
    expect(pack.replaced.map((r) => [r.layer, r.by])).toEqual([
      ['dcd', ['Dense']],
      ['bn_last', ['BatchNormalization']],
      ['bn_first', ['Permute', 'BatchNormalization', 'Permute']],
      ['classic_rescale', ['Rescaling']],
    ]);
    expect(pack.replaced[1].reason).toMatch(
      /not folded \(cannot fold into the preceding layer: Conv2D 'c2' has the non-linear activation 'relu'/,
    );
    expect(elsewhere.pack.classes).toEqual([
      'InputLayer',
      'Conv2D',
      'Conv2D',
      'BatchNormalization',
      'ReLU',
      'GlobalAveragePooling2D',
      'Dense',
      'Reshape',
      'Permute',
      'BatchNormalization',
      'Permute',
      'Rescaling',
      'Flatten',
      'Dense',
    ]);
    for (const r of Object.values(results)) r.model.dispose();
    for (const c of cases) c.model.dispose();
  }, 120000);

  test('a channels-first pack BatchNorm computes the correct map through the Permute pair (not tfjs#1106)', () => {
    const x = tf.input({ shape: [3, 4, 5] });
    const bn = dn.layers.batchNorm({ axis: 1 });
    const y = tf.layers.reLU().apply(bn.apply(x) as tf.SymbolicTensor) as tf.SymbolicTensor;
    const model = tf.model({ inputs: x, outputs: y });
    randomizeBatchNormStatistics(model, 9);
    const { model: exported, replaced } = dn.exportForInference(model);
    expect(replaced[0].by).toEqual(['Permute', 'BatchNormalization', 'Permute']);
    const xs = input([2, 3, 4, 5], 10);
    // The direct formula along axis 1.
    const [gamma, beta, mean, variance] = bn.getWeights().map((w) => w.reshape([1, 3, 1, 1]));
    const expected = tf.relu(
      tf.add(tf.mul(tf.div(tf.sub(xs, mean), tf.sqrt(tf.add(variance, 1e-3))), gamma), beta),
    );
    expect(maxAbsDiff(predict(exported, xs), expected)).toBeLessThan(1e-5);
  });

  test('a nested model is exported too', () => {
    const inner = tf.sequential({
      name: 'inner',
      layers: [
        tf.layers.dense({ units: 5, inputShape: [4], useBias: false, name: 'inner_dense' }),
        dn.layers.batchNorm({ name: 'inner_bn' }),
        dn.layers.dropout({ rate: 0.5, mode: 'classic', name: 'inner_classic' }),
        dn.layers.dropConnectDense({ units: 3, rate: 0.3, name: 'inner_dcd' }),
      ],
    });
    randomizeBatchNormStatistics(inner, 11);
    const x = tf.input({ shape: [4] });
    const y = tf.layers
      .dense({ units: 2, name: 'head' })
      .apply(inner.apply(x) as tf.SymbolicTensor);
    const model = tf.model({ inputs: x, outputs: y as tf.SymbolicTensor });
    const result = dn.exportForInference(model);
    expect(classNames(result.model).filter((n) => n.startsWith('Dropnorm'))).toEqual([]);
    expect(result.folded).toEqual([
      { batchNorm: 'inner_bn', into: 'inner_dense', direction: 'backward' },
    ]);
    const xs = input([3, 4], 12);
    expect(relative(predict(result.model, xs), predict(model, xs))).toBeLessThanOrEqual(TOL);
  });

  test('fuseActivations: false keeps every activation layer', () => {
    const model = inceptionLike({ blocks: 1 });
    const result = dn.exportForInference(model, { fuseActivations: false });
    expect(result.removed.map((r) => r.className)).toEqual(['Dropout']);
    expect(result.model.layers.filter((l) => l.getClassName() === 'Activation')).toHaveLength(9);
    expect(
      result.model.layers
        .filter((l) => l.getClassName() === 'Conv2D')
        .map((l) => l.getConfig().activation),
    ).toEqual(Array(9).fill('linear'));
    const xs = input([1, 32, 32, 3], 13);
    expect(relative(predict(result.model, xs), predict(model, xs))).toBeLessThanOrEqual(TOL);
  });

  test('no tensor is leaked: disposing the result restores the count', () => {
    const model = packModel();
    const before = tf.memory().numTensors;
    const { model: exported } = dn.exportForInference(model);
    exported.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  describe('errors, without side effects', () => {
    test('a Monte-Carlo (always stochastic) dropout is refused, naming the layer', () => {
      const model = packModel();
      const layer = model.getLayer('gauss') as dn.StochasticLayer;
      layer.mcActive = true;
      const before = tf.memory().numTensors;
      expect(() => dn.exportForInference(model)).toThrow(
        "exportForInference: expected the inference mode of GaussianDropout 'gauss' to be deterministic",
      );
      expect(tf.memory().numTensors).toBe(before);
    });

    test('a layer built with mcDropout: true is refused too (it samples in predict)', () => {
      const input = tf.input({ shape: [4] });
      const drop = dn.layers.dropout({ rate: 0.3, mcDropout: true, name: 'always' });
      const output = tf.layers.dense({ units: 2 }).apply(drop.apply(input)) as tf.SymbolicTensor;
      const model = tf.model({ inputs: input, outputs: output });
      const before = snapshot(model);
      expect(() => dn.exportForInference(model)).toThrow(
        "exportForInference: expected the inference mode of Dropout 'always' to be deterministic",
      );
      expect(snapshot(model)).toBe(before);
    });

    test('a broken BatchNorm fails exportForInferenceAsync before anything is built', async () => {
      const model = packModel();
      const bn = model.getLayer('bn_last');
      const w = bn.getWeights();
      bn.setWeights([w[0], w[1], w[2], tf.fill(w[3].shape, NaN)]);
      const before = snapshot(model);
      const count = tf.memory().numTensors;
      await expect(dn.exportForInferenceAsync(model)).rejects.toThrow(
        "exportForInferenceAsync: expected moving_variance of BatchNorm 'bn_last' to be finite",
      );
      expect(tf.memory().numTensors).toBe(count);
      expect(snapshot(model)).toBe(before);
    });

    test('options are checked', () => {
      const model = inceptionLike({ blocks: 1 });
      expect(() =>
        dn.exportForInference(model, { fuseActivation: true } as dn.ExportForInferenceOptions),
      ).toThrow(
        "exportForInference: unknown option 'fuseActivation' (did you mean 'fuseActivations'?)",
      );
      expect(() =>
        dn.exportForInference(model, {
          fuseActivations: 'yes',
        } as unknown as dn.ExportForInferenceOptions),
      ).toThrow(
        'expected options.fuseActivations to be true or false, received: options.fuseActivations="yes"',
      );
      expect(() => dn.exportForInference({} as tf.LayersModel)).toThrow(/to be a tf.LayersModel/);
    });
  });
});
