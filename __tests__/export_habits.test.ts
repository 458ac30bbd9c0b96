/**
 * The model tools on models and habits ordinary for tfjs users (issue 20, items 1, 2, 3 and 6):
 * Conv3D nets (rank-5 BatchNorm), layers inside tf.layers.timeDistributed / bidirectional, outputs
 * that become one tensor, and failures that must leak nothing. Every model a tool returns is
 * predicted, and compared with the model it came from.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import * as dn from 'tfjs-dropnorm';
import { fileSystem } from 'tfjs-dropnorm/node';
import { foldBatchNormWeights } from '../src/ops/fold';
import { NO_BUILTIN_EQUIVALENT } from '../src/model/no_builtin';
import { predict, randn, randomizeBatchNorms, relativeDiff } from './fold_helpers';
import { predictElsewhere } from './plain_tfjs';

const TOL = 1e-5;
const apply = (layer: tf.layers.Layer, t: tf.SymbolicTensor) => layer.apply(t) as tf.SymbolicTensor;

/** Every class name in the model's JSON: nested models and the layers inside wrappers too. */
function classNames(model: tf.LayersModel): string[] {
  const names: string[] = [];
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(walk);
    else if (value != null && typeof value === 'object') {
      const o = value as Record<string, unknown>;
      for (const key of ['class_name', 'className']) {
        if (typeof o[key] === 'string' && o.config != null) names.push(o[key] as string);
      }
      Object.values(o).forEach(walk);
    }
  };
  walk((model.toJSON(null, false) as { config: unknown }).config);
  return names;
}

/** Gives every BN, also inside wrappers, non-trivial seeded statistics. */
function randomizeAll(model: tf.LayersModel, seed = 1): void {
  randomizeBatchNorms(model, seed);
  for (const layer of model.layers) {
    const inner = (layer as unknown as { layer?: tf.layers.Layer }).layer;
    if (inner == null || !/BatchNorm/.test(inner.getClassName())) continue;
    const w = inner.getWeights();
    const c = w[0].size;
    const next = w.map((t, i) =>
      i < 4 ? tf.randomUniform([c], i === 3 ? 0.2 : -1, i === 3 ? 3 : 2, 'float32', seed + i) : t,
    );
    inner.setWeights(next);
  }
}

describe('item 1: rank-5 BatchNorm (Conv3D nets)', () => {
  function conv3dNet(channelsFirstBn = false): tf.LayersModel {
    const x = tf.input({ shape: [5, 5, 5, 2], name: 'volume' });
    const init = (seed: number) => tf.initializers.glorotUniform({ seed });
    let h = apply(
      tf.layers.conv3d({ filters: 3, kernelSize: 2, name: 'c1', kernelInitializer: init(1) }),
      x,
    );
    h = apply(dn.layers.batchNorm({ name: 'bn_folds' }), h); // folds into c1
    h = apply(tf.layers.reLU({ name: 'relu' }), h);
    h = apply(dn.layers.batchNorm({ name: 'bn_alone', axis: channelsFirstBn ? 1 : -1 }), h);
    h = apply(
      tf.layers.conv3d({
        filters: 2,
        kernelSize: 2,
        padding: 'same',
        name: 'c2',
        kernelInitializer: init(2),
      }),
      h,
    );
    h = apply(tf.layers.reLU({ name: 'relu2' }), h);
    return tf.model({ inputs: x, outputs: h });
  }

  test('the Conv3D kernel layout [d, h, w, in, out] folds: conv3d(x, W′) + b′ = BN(conv3d(x, W) + b)', () => {
    const x = randn([2, 4, 4, 4, 3], 1);
    const kernel = randn([2, 2, 2, 3, 4], 2);
    const bias = randn([4], 3);
    const bn = {
      gamma: tf.randomUniform([4], 0.5, 2, 'float32', 4),
      beta: randn([4], 5),
      movingMean: randn([4], 6),
      movingVariance: tf.randomUniform([4], 0.2, 3, 'float32', 7),
      epsilon: 1e-3,
    };
    const reference = tf.batchNorm(
      tf.reshape(
        tf.add(tf.conv3d(x as tf.Tensor5D, kernel as tf.Tensor5D, 1, 'valid'), bias),
        [-1, 4],
      ),
      bn.movingMean,
      bn.movingVariance,
      bn.beta,
      bn.gamma,
      bn.epsilon,
    );
    const folded = foldBatchNormWeights(kernel, bias, bn, 'conv3d');
    const y = tf.add(
      tf.conv3d(x as tf.Tensor5D, folded.kernel as tf.Tensor5D, 1, 'valid'),
      folded.bias,
    );
    expect(relativeDiff(tf.reshape(y, [-1, 4]), reference)).toBeLessThan(TOL);
  });

  test.each([
    ['channels-last', false],
    ['channels-first', true],
  ])(
    'exportForInference (%s): no rank-5 built-in BN; the export predicts what the model predicts and loads in plain tfjs',
    async (_, channelsFirst) => {
      const model = conv3dNet(channelsFirst);
      randomizeBatchNorms(model, 3);
      const x = randn([2, 5, 5, 5, 2], 4);
      const result = dn.exportForInference(model);
      expect(result.folded).toEqual([{ batchNorm: 'bn_folds', into: 'c1', direction: 'backward' }]);
      expect(result.replaced.map((r) => [r.layer, r.by])).toEqual([
        ['bn_alone', channelsFirst ? ['Permute', 'Dense', 'Permute'] : ['Dense']],
      ]);
      expect(result.replaced[0].reason).toMatch(/cannot run a rank-5 input in tfjs 4\.22/);
      const classes = classNames(result.model);
      expect(classes).not.toContain('BatchNormalization');
      expect(classes.filter((n) => n.startsWith('Dropnorm'))).toEqual([]);
      expect(relativeDiff(predict(result.model, x), predict(model, x))).toBeLessThan(TOL);

      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dropnorm-conv3d-'));
      try {
        await result.model.save(fileSystem(dir));
        const theirs = predictElsewhere([{ name: 'conv3d', dir, x }]).conv3d;
        expect(theirs.packLoaded).toBe(false);
        const reference = predict(model, x);
        expect(relativeDiff(tf.tensor(theirs.y, reference.shape), reference)).toBeLessThan(TOL);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  test('a built-in BatchNormalization at rank 5 that cannot fold becomes the Dense affine map (the input model itself cannot predict)', () => {
    const x = tf.input({ shape: [4, 4, 4, 2] });
    const h = apply(tf.layers.reLU(), apply(tf.layers.conv3d({ filters: 3, kernelSize: 2 }), x));
    const model = tf.model({
      inputs: x,
      outputs: apply(tf.layers.batchNormalization({ name: 'builtin_bn' }), h),
    });
    randomizeBatchNorms(model, 5);
    const input = randn([2, 4, 4, 4, 2], 6);
    expect(() => predict(model, input)).toThrow(/not implemented for array of rank 5/);
    // The reference: the pack's BN computes the built-in's inference map at any rank.
    const reference = predict(dn.convertToDropnorm(model).model, input);
    const result = dn.exportForInference(model);
    expect(result.replaced.map((r) => [r.layer, r.className, r.by])).toEqual([
      ['builtin_bn', 'BatchNormalization', ['Dense']],
    ]);
    expect(relativeDiff(predict(result.model, input), reference)).toBeLessThan(TOL);
  });

  test('convertToBuiltins keeps a rank-5 BatchNorm (listed in skipped) and the result predicts; foldBatchNorm folds into Conv3D', () => {
    const model = conv3dNet();
    randomizeBatchNorms(model, 7);
    const x = randn([2, 5, 5, 5, 2], 8);
    const converted = dn.convertToBuiltins(model);
    expect(converted.converted).toEqual([]);
    expect(converted.skipped.map((s) => s.layer)).toEqual(['bn_folds', 'bn_alone']);
    expect(converted.skipped[0].reason).toMatch(
      /its input has rank 5: tf.layers.batchNormalization cannot run it in tfjs 4\.22/,
    );
    expect(relativeDiff(predict(converted.model, x), predict(model, x))).toBe(0);

    const folded = dn.foldBatchNorm(model);
    expect(folded.folded).toEqual([{ batchNorm: 'bn_folds', into: 'c1', direction: 'backward' }]);
    expect(relativeDiff(predict(folded.model, x), predict(model, x))).toBeLessThan(TOL);
  });
});

describe('item 2: layers inside tf.layers.timeDistributed and bidirectional', () => {
  /** Dense → TD(BN) → TD(dropout) → TD(built-in dropout) → TD(DropConnectDense) → TD(classic) → BiLSTM. */
  function sequenceNet(): tf.LayersModel {
    const x = tf.input({ shape: [6, 3], name: 'seq' });
    const td = (layer: tf.layers.Layer, name: string) => tf.layers.timeDistributed({ layer, name });
    let h = apply(tf.layers.dense({ units: 4, name: 'proj' }), x);
    h = apply(td(dn.layers.batchNorm({ name: 'bn' }), 'td_bn'), h);
    h = apply(tf.layers.reLU({ name: 'relu' }), h);
    h = apply(td(dn.layers.batchNorm({ name: 'bn2' }), 'td_bn2'), h);
    h = apply(td(dn.layers.dropout({ rate: 0.3, name: 'drop' }), 'td_drop'), h);
    h = apply(td(tf.layers.dropout({ rate: 0.3, name: 'bdrop' }), 'td_bdrop'), h);
    h = apply(td(dn.layers.dropConnectDense({ units: 5, rate: 0.2, name: 'dc' }), 'td_dc'), h);
    h = apply(td(dn.layers.dropout({ rate: 0.5, mode: 'classic', name: 'cd' }), 'td_cd'), h);
    h = apply(
      tf.layers.bidirectional({
        layer: tf.layers.lstm({ units: 2, returnSequences: true }) as tf.RNN,
        name: 'bi',
      }),
      h,
    );
    return tf.model({ inputs: x, outputs: h });
  }

  test('exportForInference sees inside the wrappers: no pack class left, same predictions, loads in plain tfjs', async () => {
    const model = sequenceNet();
    randomizeAll(model, 11);
    const x = randn([3, 6, 3], 12);
    const result = dn.exportForInference(model);
    expect(classNames(result.model).filter((n) => n.startsWith('Dropnorm'))).toEqual([]);
    expect(result.folded).toEqual([{ batchNorm: 'td_bn', into: 'proj', direction: 'backward' }]);
    expect(result.removed.map((r) => [r.layer, r.into])).toEqual([
      ['td_drop/drop', undefined],
      ['td_bdrop/bdrop', undefined],
      ['relu', 'proj'], // fused into the Dense the BN folded into
    ]);
    expect(result.replaced.map((r) => [r.layer, r.by])).toEqual([
      ['td_bn/bn', ['DropnormBatchNorm']],
      ['td_bn2/bn2', ['DropnormBatchNorm']],
      ['td_dc/dc', ['Dense']],
      ['td_cd/cd', ['Rescaling']],
      ['td_bn2', ['BatchNormalization']],
    ]);
    expect(result.skipped).toEqual([]);
    expect(relativeDiff(predict(result.model, x), predict(model, x))).toBeLessThan(TOL);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dropnorm-td-'));
    try {
      await result.model.save(fileSystem(dir));
      const theirs = predictElsewhere([{ name: 'td', dir, x }]).td;
      expect(theirs.packLoaded).toBe(false);
      expect(theirs.classes).toContain('Bidirectional');
      const reference = predict(model, x);
      expect(relativeDiff(tf.tensor(theirs.y, reference.shape), reference)).toBeLessThan(TOL);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('convertToBuiltins and convertToDropnorm convert inside TimeDistributed (paths wrapper/layer); what has no counterpart is skipped with its path', () => {
    const model = sequenceNet();
    randomizeAll(model, 13);
    const x = randn([2, 6, 3], 14);
    const toBuiltins = dn.convertToBuiltins(model);
    expect(toBuiltins.converted.map((c) => [c.layer, c.from, c.to])).toEqual([
      ['td_bn/bn', 'DropnormBatchNorm', 'BatchNormalization'],
      ['td_bn2/bn2', 'DropnormBatchNorm', 'BatchNormalization'],
      ['td_drop/drop', 'DropnormDropout', 'Dropout'],
    ]);
    expect(toBuiltins.skipped.map((s) => [s.layer, s.className])).toEqual([
      ['td_dc/dc', 'DropnormDropConnectDense'],
      ['td_cd/cd', 'DropnormDropout'],
    ]);
    expect(relativeDiff(predict(toBuiltins.model, x), predict(model, x))).toBeLessThan(TOL);

    const toPack = dn.convertToDropnorm(toBuiltins.model);
    expect(toPack.converted.map((c) => [c.layer, c.to])).toEqual([
      ['td_bn/bn', 'DropnormBatchNorm'],
      ['td_bn2/bn2', 'DropnormBatchNorm'],
      ['td_drop/drop', 'DropnormDropout'],
      ['td_bdrop/bdrop', 'DropnormDropout'],
    ]);
    const classes = classNames(toPack.model);
    expect(classes).not.toContain('BatchNormalization');
    expect(classes).not.toContain('Dropout');
    expect(relativeDiff(predict(toPack.model, x), predict(model, x))).toBeLessThan(TOL);
  });

  test('mcPredict draws noise in dropout layers inside TimeDistributed (built-in ones converted on a copy)', () => {
    const model = sequenceNet();
    const x = randn([2, 6, 3], 15);
    const before = tf.memory().numTensors;
    const { mean, variance, stochasticLayers } = dn.mcPredict<tf.Tensor>(model, x, {
      samples: 4,
      seed: 1,
    });
    expect(stochasticLayers).toEqual(['td_drop/drop', 'td_bdrop/bdrop', 'td_dc/dc', 'td_cd/cd']);
    expect(tf.tidy(() => tf.max(variance).dataSync()[0])).toBeGreaterThan(0);
    tf.dispose([mean, variance]);
    expect(tf.memory().numTensors).toBe(before);

    // Only a built-in dropout inside a wrapper: before, "no dropout layers in the model".
    const y = tf.input({ shape: [4, 2] });
    const only = tf.model({
      inputs: y,
      outputs: apply(
        tf.layers.timeDistributed({
          layer: tf.layers.dropout({ rate: 0.5, name: 'd' }),
          name: 'w',
        }),
        y,
      ),
    });
    const r = dn.mcPredict<tf.Tensor>(only, tf.ones([3, 4, 2]), { samples: 3, seed: 2 });
    expect(r.stochasticLayers).toEqual(['w/d']);
    expect(tf.tidy(() => tf.max(r.variance).dataSync()[0])).toBeGreaterThan(0);
    tf.dispose([r.mean, r.variance]);
  });

  test('foldBatchNorm lists a BN inside a wrapper in skipped (it folds only BNs called directly)', () => {
    const model = sequenceNet();
    const result = dn.foldBatchNorm(model);
    expect(result.folded).toEqual([]);
    expect(result.skipped.map((s) => s.batchNorm)).toEqual(['td_bn/bn', 'td_bn2/bn2']);
    expect(result.skipped[0].reason).toMatch(/inside the wrapper TimeDistributed 'td_bn'/);
  });
});

describe('item 3: outputs that become one tensor', () => {
  test('outputs [features, dropout(features)]: the export predicts both, under their names', () => {
    const x = tf.input({ shape: [3], name: 'x' });
    const features = apply(tf.layers.dense({ units: 4, name: 'features' }), x);
    const dropped = apply(dn.layers.dropout({ rate: 0.5, name: 'dropped' }), features);
    const model = tf.model({ inputs: x, outputs: [features, dropped] });
    const input = randn([2, 3], 1);
    const result = dn.exportForInference(model);
    const ys = result.model.predict(input) as tf.Tensor[];
    const want = model.predict(input) as tf.Tensor[];
    expect(ys).toHaveLength(2);
    expect(ys[0]).not.toBe(ys[1]);
    ys.forEach((y, i) => expect(relativeDiff(y, want[i])).toBe(0));
    expect(result.model.outputNames).toEqual(['features', 'dropped']);
    expect(result.removed).toEqual([]);
    expect(result.replaced).toEqual([
      {
        layer: 'dropped',
        className: 'DropnormDropout',
        by: ['Activation'],
        reason: expect.stringMatching(
          /the identity at inference, but its output is a model output that would be the same tensor as another output/,
        ),
      },
    ]);
    expect(classNames(result.model).filter((n) => n.startsWith('Dropnorm'))).toEqual([]);
  });

  test('two dropouts of one tensor as two outputs, and an output that is dropout(input): each a tensor of its own', () => {
    const x = tf.input({ shape: [3], name: 'x' });
    const f = apply(tf.layers.dense({ units: 2, name: 'f' }), x);
    const a = apply(tf.layers.dropout({ rate: 0.1, name: 'a' }), f);
    const b = apply(dn.layers.gaussianDropout({ rate: 0.1, name: 'b' }), f);
    const c = apply(dn.layers.dropout({ rate: 0.1, name: 'c' }), x);
    const model = tf.model({ inputs: x, outputs: [a, b, c] });
    const input = randn([2, 3], 2);
    for (const result of [
      dn.exportForInference(model),
      dn.exportForInference(model, { fuseActivations: false }),
    ]) {
      const ys = result.model.predict(input) as tf.Tensor[];
      const want = model.predict(input) as tf.Tensor[];
      expect(new Set(ys).size).toBe(3);
      expect(ys).not.toContain(input); // disposing an output never frees the caller's input
      ys.forEach((y, i) => expect(relativeDiff(y, want[i])).toBe(0));
      expect(result.removed.map((r) => r.layer)).toEqual(['a']);
      expect(result.replaced.map((r) => [r.layer, r.by])).toEqual([
        ['b', ['Activation']],
        ['c', ['Activation']],
      ]);
    }
  });

  test('a shared dropout called on two branches that are both outputs', () => {
    const x = tf.input({ shape: [3] });
    const shared = dn.layers.dropout({ rate: 0.2, name: 'shared' });
    const p = apply(tf.layers.dense({ units: 2, name: 'p' }), x);
    const model = tf.model({ inputs: x, outputs: [p, apply(shared, p), apply(shared, x)] });
    const input = randn([4, 3], 3);
    const result = dn.exportForInference(model);
    const ys = result.model.predict(input) as tf.Tensor[];
    const want = model.predict(input) as tf.Tensor[];
    expect(new Set([...ys, input]).size).toBe(4);
    ys.forEach((y, i) => expect(relativeDiff(y, want[i])).toBe(0));
  });
});

describe('item 6: nothing leaks on any error path of any model tool', () => {
  function disposedModel(): tf.LayersModel {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ units: 3, inputShape: [2] }),
        tf.layers.batchNormalization(),
        tf.layers.dropout({ rate: 0.5 }),
        dn.layers.dropout({ rate: 0.5 }),
      ],
    });
    model.dispose();
    return model;
  }
  const x = () => tf.ones([2, 2]);
  const tools: Array<[string, (m: tf.LayersModel, x: tf.Tensor) => unknown]> = [
    ['foldBatchNorm', (m) => dn.foldBatchNorm(m)],
    ['foldBatchNormAsync', (m) => dn.foldBatchNormAsync(m)],
    ['exportForInference', (m) => dn.exportForInference(m)],
    ['exportForInferenceAsync', (m) => dn.exportForInferenceAsync(m)],
    ['convertToDropnorm', (m) => dn.convertToDropnorm(m)],
    ['convertToBuiltins', (m) => dn.convertToBuiltins(m)],
    ['mcPredict', (m, input) => dn.mcPredict(m, input)],
    ['mcPredictAsync', (m, input) => dn.mcPredictAsync(m, input)],
    ['rewriteModel', (m) => dn.rewriteModel(m)],
  ];

  test.each(tools)('%s on a disposed model: a clear error, no tensor left', async (owner, tool) => {
    const model = disposedModel();
    const input = x();
    const before = tf.memory().numTensors;
    let error: unknown = null;
    try {
      await tool(model, input);
    } catch (e) {
      error = e;
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(error).toBeInstanceOf(dn.DropnormValueError);
    expect((error as Error).message).toMatch(
      new RegExp(
        `^${owner}: expected model to hold live weights, received: model="a disposed model \\('sequential_\\w+': weight '.+' is disposed\\)"\\. model\\.dispose\\(\\)`,
      ),
    );
    input.dispose();
  });

  test.each([
    ['exportForInference', (m: tf.LayersModel) => dn.exportForInference(m)],
    ['foldBatchNorm', (m: tf.LayersModel) => dn.foldBatchNorm(m)],
    ['convertToBuiltins', (m: tf.LayersModel) => dn.convertToBuiltins(m)],
    ['convertToDropnorm', (m: tf.LayersModel) => dn.convertToDropnorm(m)],
    ['mcPredict', (m: tf.LayersModel) => dn.mcPredict(m, tf.ones([2, 3]))],
  ])(
    '%s on a model with an unregistered class (found after a nested copy is built): no tensor left',
    (owner, tool) => {
      class Unregistered extends tf.layers.Layer {
        static className = 'UnregisteredInHabits';
        override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
          return tf.mul(Array.isArray(inputs) ? inputs[0] : inputs, 2);
        }
      }
      // The nested model converts (built-in dropout, BN): its copy exists when the outer fails.
      const inner = tf.sequential({
        name: 'inner',
        layers: [
          tf.layers.dense({ units: 3, inputShape: [3] }),
          tf.layers.batchNormalization(),
          tf.layers.dropout({ rate: 0.5 }),
        ],
      });
      const x = tf.input({ shape: [3] });
      const model = tf.model({
        inputs: x,
        outputs: apply(new Unregistered({ name: 'odd' }), apply(inner, x)),
      });
      const before = tf.memory().numTensors;
      expect(() => tool(model)).toThrow(
        new RegExp(`^${owner}: expected the class of layer 'odd' to be registered with tfjs`),
      );
      // mcPredict's input (tf.ones) is the one tensor the call's caller owns.
      expect(tf.memory().numTensors - before).toBe(owner === 'mcPredict' ? 1 : 0);
      model.dispose();
    },
  );

  test('mcPredict whose outputs are not the probabilities it is told: the converted copy is freed', () => {
    // Outputs ≥ 2 whatever the dropout keeps (kernel of ones, bias 2, inputs ≥ 0): never
    // probabilities, so both checks fail on every draw (an unseeded kernel sometimes gave [0, 1]).
    const model = tf.sequential({
      layers: [
        tf.layers.dropout({ rate: 0.5, inputShape: [3] }),
        tf.layers.dense({
          units: 2,
          kernelInitializer: 'ones',
          biasInitializer: tf.initializers.constant({ value: 2 }),
        }),
      ],
    });
    const input = tf.ones([2, 3]);
    const before = tf.memory().numTensors;
    for (const probabilities of ['categorical', 'binary'] as const) {
      expect(() => dn.mcPredict(model, input, { probabilities, samples: 2 })).toThrow(
        /^mcPredict: expected probabilities to describe output 0/,
      );
    }
    expect(tf.memory().numTensors).toBe(before);
    input.dispose();
    model.dispose();
  });

  test('a rewrite failing after the copy is built (wrong weights for a replaced layer) frees the copy', () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 3, inputShape: [2] })] });
    const dense = model.layers[0];
    const wrong = [tf.zeros([5, 5])];
    const before = tf.memory().numTensors;
    expect(() =>
      dn.rewriteModel(
        model,
        new Map([
          [dense, { replace: { className: 'Dense', config: dense.getConfig(), weights: wrong } }],
        ]),
      ),
    ).toThrow();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(wrong);
    model.dispose();
  });
});

describe('pack layers with no built-in equivalent (the table keyed by class name)', () => {
  class PerSampleScale extends tf.layers.Layer {
    static className = 'TestPerSampleScale';
    override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
      const t = Array.isArray(inputs) ? inputs[0] : inputs;
      return tf.tidy(() => tf.div(t, tf.add(tf.max(tf.abs(t), -1, true), 1)));
    }
  }
  beforeAll(() => {
    tf.serialization.registerClass(PerSampleScale);
    NO_BUILTIN_EQUIVALENT.set('TestPerSampleScale', 'a test per-sample normalization');
  });
  afterAll(() => NO_BUILTIN_EQUIVALENT.delete('TestPerSampleScale'));

  test('exportForInference keeps it and lists it in kept; convertToBuiltins lists it in skipped', () => {
    const x = tf.input({ shape: [4, 3] });
    let h = apply(new PerSampleScale({ name: 'norm' }), x);
    h = apply(
      tf.layers.timeDistributed({ layer: new PerSampleScale({ name: 'inner' }), name: 'td' }),
      h,
    );
    h = apply(dn.layers.dropout({ rate: 0.1 }), h);
    const model = tf.model({ inputs: x, outputs: h });
    const input = randn([2, 4, 3], 4);
    const exported = dn.exportForInference(model);
    expect(exported.kept).toEqual([
      {
        layer: 'norm',
        className: 'TestPerSampleScale',
        reason:
          "a test per-sample normalization: kept as the pack's layer, so the export needs the pack registered to load",
      },
      {
        layer: 'td/inner',
        className: 'TestPerSampleScale',
        reason: expect.stringContaining('kept as the pack'),
      },
    ]);
    expect(exported.skipped).toEqual([]);
    expect(relativeDiff(predict(exported.model, input), predict(model, input))).toBe(0);
    const converted = dn.convertToBuiltins(model);
    expect(converted.skipped.map((s) => [s.layer, s.reason])).toEqual([
      ['norm', "a test per-sample normalization; kept as the pack's layer"],
      ['td/inner', "a test per-sample normalization; kept as the pack's layer"],
    ]);
  });
});

describe('no synchronous read in foldBatchNorm, exportForInference and mcPredictAsync', () => {
  test('dataSync, arraySync and the backend readSync are never called', async () => {
    const x = tf.input({ shape: [5, 5, 5, 2] });
    let h = apply(tf.layers.conv3d({ filters: 3, kernelSize: 2 }), x);
    h = apply(dn.layers.batchNorm({}), h);
    h = apply(tf.layers.reLU(), h);
    h = apply(dn.layers.batchNorm({}), h); // unfoldable at rank 5: the Dense affine map
    h = apply(tf.layers.flatten(), h);
    h = apply(dn.layers.dropout({ rate: 0.5, mode: 'classic' }), h);
    h = apply(tf.layers.dense({ units: 3, activation: 'softmax' }), h);
    const model = tf.model({ inputs: x, outputs: h });
    randomizeBatchNorms(model, 9);
    const input = randn([2, 5, 5, 5, 2], 10);
    const spies = [
      jest.spyOn(tf.Tensor.prototype, 'dataSync'),
      jest.spyOn(tf.Tensor.prototype, 'arraySync'),
      // Every synchronous read goes through the engine (the backend's readSync also serves data()).
      jest.spyOn(tf.engine(), 'readSync'),
    ];
    let results: unknown[];
    try {
      results = [
        dn.foldBatchNorm(model),
        dn.exportForInference(model),
        await dn.foldBatchNormAsync(model),
        await dn.exportForInferenceAsync(model),
        await dn.mcPredictAsync<tf.Tensor>(model, input, {
          samples: 2,
          probabilities: 'categorical',
        }),
      ];
      for (const spy of spies) expect(spy).not.toHaveBeenCalled();
    } finally {
      spies.forEach((s) => s.mockRestore());
    }
    const [fold, exported] = results as [dn.FoldBatchNormResult, dn.ExportForInferenceResult];
    expect(relativeDiff(predict(exported.model, input), predict(model, input))).toBeLessThan(TOL);
    expect(relativeDiff(predict(fold.model, input), predict(model, input))).toBeLessThan(TOL);
  });
});
