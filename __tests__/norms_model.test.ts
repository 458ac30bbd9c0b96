/**
 * GroupNorm, InstanceNorm and RMSNorm in models (issue 22): training, save/load through
 * fileSystem, and a model.json in tensorflowjs_converter's layout (snake_case config, the Keras 3
 * and TF Addons class names, weights named <layer>/gamma) loaded by tf.loadLayersModel.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { AddonsGroupNormalization, GroupNorm, InstanceNorm, RMSNorm, layers } from 'tfjs-dropnorm';
import { fileSystem } from 'tfjs-dropnorm/node';
import { leakedTensors, maxAbsDiff } from './helpers';
import { groupNorm64, relativeError, rmsNorm64 } from './norms_reference';

function convNet(): tf.LayersModel {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const input = tf.input({ shape: [6, 6, 2] });
  let h = tf.layers
    .conv2d({ filters: 8, kernelSize: 3, padding: 'same', kernelInitializer: init(1) })
    .apply(input) as tf.SymbolicTensor;
  h = layers.groupNorm({ groups: 4, name: 'gn' }).apply(h) as tf.SymbolicTensor;
  h = tf.layers.permute({ dims: [3, 1, 2] }).apply(h) as tf.SymbolicTensor; // channels-first
  h = layers.instanceNorm({ axis: 1, name: 'in' }).apply(h) as tf.SymbolicTensor;
  h = tf.layers.flatten().apply(h) as tf.SymbolicTensor;
  h = tf.layers.dense({ units: 6, kernelInitializer: init(2) }).apply(h) as tf.SymbolicTensor;
  h = layers.rmsNorm({ name: 'rms' }).apply(h) as tf.SymbolicTensor;
  const out = tf.layers
    .dense({ units: 2, activation: 'softmax', kernelInitializer: init(3) })
    .apply(h) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  return model;
}

describe('the norms in a model', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dropnorm-norms-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('trains (the loss falls, γ β and scale move), saves and loads through fileSystem', async () => {
    const model = convNet();
    const x = tf.randomNormal([16, 6, 6, 2], 0, 1, 'float32', 1);
    const y = tf.oneHot(tf.cast(tf.greater(tf.sum(x, [1, 2, 3]), 0), 'int32'), 2);
    const history = await model.fit(x, y, { epochs: 15, batchSize: 8, verbose: 0 });
    const loss = history.history.loss as number[];
    expect(loss[loss.length - 1]).toBeLessThan(loss[0]);
    const gamma = model.getLayer('gn').getWeights()[0];
    expect(maxAbsDiff(gamma, tf.onesLike(gamma))).toBeGreaterThan(1e-3);

    await model.save(fileSystem(dir));
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    const configs = json.modelTopology.config.layers as Array<{
      class_name: string;
      config: Record<string, unknown>;
    }>;
    const byName = (n: string) => configs.find((l) => l.config.name === n)!;
    expect(byName('gn').class_name).toBe('GroupNormalization');
    expect(byName('in').class_name).toBe('Addons>InstanceNormalization');
    expect(byName('rms').class_name).toBe('RMSNormalization');
    // Keras's snake_case keys in the file.
    expect(byName('gn').config).toMatchObject({ groups: 4, axis: -1, epsilon: 1e-3 });
    expect(byName('gn').config.beta_initializer).toEqual({ class_name: 'Zeros', config: {} });
    const names = json.weightsManifest[0].weights.map((w: { name: string }) => w.name);
    expect(names).toEqual(
      expect.arrayContaining(['gn/gamma', 'gn/beta', 'in/gamma', 'in/beta', 'rms/scale']),
    );

    const loaded = await tf.loadLayersModel(fileSystem(dir));
    expect(loaded.getLayer('gn')).toBeInstanceOf(GroupNorm);
    expect(loaded.getLayer('in')).toBeInstanceOf(InstanceNorm);
    expect(loaded.getLayer('rms')).toBeInstanceOf(RMSNorm);
    const a = model.predict(x) as tf.Tensor;
    const b = loaded.predict(x) as tf.Tensor;
    expect(maxAbsDiff(a, b)).toBe(0);
    tf.dispose([a, b, x, y]);
    model.dispose();
    loaded.dispose();
  });

  it('a training step leaks no tensor', async () => {
    const model = convNet();
    const x = tf.randomNormal([4, 6, 6, 2], 0, 1, 'float32', 2);
    const y = tf.oneHot(tf.tensor1d([0, 1, 0, 1], 'int32'), 2);
    await model.trainOnBatch(x, y);
    const leaked = await leakedTensors(async () => {
      for (let i = 0; i < 3; i++) await model.trainOnBatch(x, y);
    });
    expect(leaked).toBe(0);
    tf.dispose([x, y]);
    model.dispose();
  });
});

/**
 * A model.json as tensorflowjs_converter writes it from a tf.keras (Keras 2) model: a Sequential
 * with Keras 3's GroupNormalization and RMSNormalization (Keras 3 serializes objects with `module`
 * and `registered_name`, and RMSNormalization's axis as a list after build) and TF Addons'
 * GroupNormalization and InstanceNormalization (Addons writes InstanceNormalization's groups as the
 * channel count after build). Weights named <layer>/<weight>, as the converter's manifest.
 */
const CHANNELS = 8;
const MODEL_JSON = {
  format: 'layers-model',
  generatedBy: 'keras v2.15.0',
  convertedBy: 'TensorFlow.js Converter v4.22.0',
  modelTopology: {
    keras_version: '2.15.0',
    backend: 'tensorflow',
    model_config: {
      class_name: 'Sequential',
      config: {
        name: 'sequential',
        layers: [
          {
            class_name: 'InputLayer',
            config: {
              batch_input_shape: [null, 5, CHANNELS],
              dtype: 'float32',
              sparse: false,
              name: 'input_1',
            },
          },
          {
            class_name: 'GroupNormalization',
            config: {
              name: 'group_normalization',
              trainable: true,
              dtype: 'float32',
              groups: 4,
              axis: -1,
              epsilon: 0.001,
              center: true,
              scale: true,
              beta_initializer: {
                module: 'keras.initializers',
                class_name: 'Zeros',
                config: {},
                registered_name: null,
              },
              gamma_initializer: {
                module: 'keras.initializers',
                class_name: 'Ones',
                config: {},
                registered_name: null,
              },
              beta_regularizer: null,
              gamma_regularizer: null,
              beta_constraint: null,
              gamma_constraint: null,
            },
          },
          {
            class_name: 'Addons>InstanceNormalization',
            config: {
              name: 'instance_normalization',
              trainable: true,
              dtype: 'float32',
              groups: CHANNELS,
              axis: -1,
              epsilon: 0.001,
              center: true,
              scale: true,
              beta_initializer: { class_name: 'Zeros', config: {} },
              gamma_initializer: { class_name: 'Ones', config: {} },
              beta_regularizer: null,
              gamma_regularizer: null,
              beta_constraint: null,
              gamma_constraint: null,
            },
          },
          {
            class_name: 'Addons>GroupNormalization',
            config: {
              name: 'group_normalization_1',
              trainable: true,
              dtype: 'float32',
              groups: 2,
              axis: -1,
              epsilon: 1e-5,
              center: false,
              scale: true,
              beta_initializer: { class_name: 'Zeros', config: {} },
              gamma_initializer: { class_name: 'Ones', config: {} },
              beta_regularizer: null,
              gamma_regularizer: { class_name: 'L1L2', config: { l1: 0, l2: 0.01 } },
              beta_constraint: null,
              gamma_constraint: null,
            },
          },
          {
            class_name: 'RMSNormalization',
            config: {
              name: 'rms_normalization',
              trainable: true,
              dtype: 'float32',
              axis: [-1],
              epsilon: 1e-6,
            },
          },
        ],
      },
    },
  },
  weightsManifest: [
    {
      paths: ['group1-shard1of1.bin'],
      weights: [
        { name: 'group_normalization/gamma', shape: [CHANNELS], dtype: 'float32' },
        { name: 'group_normalization/beta', shape: [CHANNELS], dtype: 'float32' },
        { name: 'instance_normalization/gamma', shape: [CHANNELS], dtype: 'float32' },
        { name: 'instance_normalization/beta', shape: [CHANNELS], dtype: 'float32' },
        { name: 'group_normalization_1/gamma', shape: [CHANNELS], dtype: 'float32' },
        { name: 'rms_normalization/scale', shape: [CHANNELS], dtype: 'float32' },
      ],
    },
  ],
};

describe('a converter-written model.json with the Keras 3 and Addons class names', () => {
  // Deterministic weights, one Float32Array per manifest entry, concatenated as the shard.
  const values = MODEL_JSON.weightsManifest[0].weights.map((_, k) =>
    Float32Array.from({ length: CHANNELS }, (_, c) => 1 + 0.1 * k + 0.05 * c * (k % 2 ? -1 : 1)),
  );
  const shard = new Float32Array(values.length * CHANNELS);
  values.forEach((v, k) => shard.set(v, k * CHANNELS));

  async function load(): Promise<tf.LayersModel> {
    // The files as a fetch handler would see them: model.json parsed, the shard as bytes.
    const json = JSON.parse(JSON.stringify(MODEL_JSON)) as typeof MODEL_JSON;
    return tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: json.modelTopology,
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
        weightSpecs: json.weightsManifest[0].weights as tf.io.WeightsManifestEntry[],
        weightData: shard.buffer,
      }),
    );
  }

  it('loads: the classes, their snake_case configs as camelCase, the weights by name', async () => {
    const model = await load();
    const [gn, inorm, addons, rms] = model.layers.filter((l) => l.getClassName() !== 'InputLayer');
    expect(gn).toBeInstanceOf(GroupNorm);
    expect(inorm).toBeInstanceOf(InstanceNorm);
    expect(addons).toBeInstanceOf(AddonsGroupNormalization);
    expect(rms).toBeInstanceOf(RMSNorm);
    expect(gn.getConfig()).toMatchObject({ groups: 4, epsilon: 0.001, center: true });
    expect(addons.getConfig()).toMatchObject({ groups: 2, epsilon: 1e-5, center: false });
    expect((addons.getConfig().gammaRegularizer as { className: string }).className).toBe('L1L2');
    expect(addons.losses).toHaveLength(1);
    expect(rms.getConfig()).toMatchObject({ axis: [-1], epsilon: 1e-6 });
    expect(model.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(
      values.map((v) => Array.from(v)),
    );
    model.dispose();
  });

  it('predicts what the float64 chain of the four formulas gives', async () => {
    const model = await load();
    const x = tf.randomNormal([3, 5, CHANNELS], 2, 3, 'float32', 5);
    const y = model.predict(x) as tf.Tensor;
    const shape = [3, 5, CHANNELS];
    let h: ArrayLike<number> = x.dataSync();
    h = groupNorm64(h, shape, 2, 4, values[0], values[1], 1e-3).y;
    h = groupNorm64(h, shape, 2, CHANNELS, values[2], values[3], 1e-3).y;
    h = groupNorm64(h, shape, 2, 2, values[4], null, 1e-5).y;
    h = rmsNorm64(h, shape, [2], values[5], 1e-6).y;
    expect(relativeError(y.dataSync(), h)).toBeLessThan(1e-5);
    tf.dispose([x, y]);
    model.dispose();
  });

  it('saves back under the same class names and loads again', async () => {
    const model = await load();
    let saved: tf.io.ModelArtifacts | undefined;
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        saved = artifacts;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const topology = saved!.modelTopology as { config: { layers: Array<{ class_name: string }> } };
    expect(topology.config.layers.map((l) => l.class_name)).toEqual([
      'InputLayer',
      'GroupNormalization',
      'Addons>InstanceNormalization',
      'Addons>GroupNormalization',
      'RMSNormalization',
    ]);
    const again = await tf.loadLayersModel(tf.io.fromMemory(saved!));
    const x = tf.randomNormal([2, 5, CHANNELS], 0, 1, 'float32', 6);
    expect(maxAbsDiff(again.predict(x) as tf.Tensor, model.predict(x) as tf.Tensor)).toBe(0);
    model.dispose();
    again.dispose();
  });
});
