/**
 * Strict options (issue 11, item 4): every public entry point rejects an unknown option key with a
 * DropnormValueError naming the owner, the key and the nearest accepted key, and still works with
 * valid options; every config getConfig writes (ours and tfjs's base keys) still loads.
 */
import * as tf from '@tensorflow/tfjs';
import {
  activationStats,
  AddonsGroupNormalization,
  BatchNorm,
  ClipOptimizer,
  clipOptimizer,
  convertToDropnorm,
  DropnormValueError,
  foldBatchNorm,
  exportForInference,
  GradientFlow,
  gradientNorms,
  layers,
  mcPredict,
  mcPredictAsync,
  DropRateScheduler,
  ops,
  recalibrateBatchNorm,
  rewriteModel,
  saveForInference,
} from 'tfjs-dropnorm';
import { fileSystem, pickBackend } from 'tfjs-dropnorm/node';
import { BASE_LAYER_ARGS } from '../src/errors';
import { PACK_CLASSES } from '../src/register';
import { maxAbsDiff } from './helpers';

// The base Layer arguments the pack accepts are exactly tfjs's LayerArgs (checked by tsc).
type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const baseArgsAreTfjsLayerArgs: Same<keyof LayerArgs, (typeof BASE_LAYER_ARGS)[number]> = true;

/** A small model with a dense layer, the pack's BN and the pack's dropout. */
function mlp(): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [4], units: 3, name: 'dense_in' }),
      layers.batchNorm({ name: 'bn' }),
      layers.dropout({ rate: 0.2, seed: 1, name: 'drop' }),
      tf.layers.dense({ units: 2, name: 'dense_out' }),
    ],
  });
}

const x = tf.randomNormal([6, 4], 0, 1, 'float32', 3);
const y = tf.randomNormal([6, 2], 0, 1, 'float32', 4);

interface Row {
  /** The entry point, as the user calls it. */
  entry: string;
  /** The owner the message must start with. */
  owner: string;
  /** Calls the entry point with `options` (a layer's arguments or a function's options). */
  call: (options: Record<string, unknown>) => unknown;
  /** A misspelt key, its value, and the key it should suggest. */
  typo: [string, unknown, string];
  /** Valid options: the call must succeed. */
  valid: Record<string, unknown>;
  /** Options every call needs (the layer's required arguments). */
  base?: Record<string, unknown>;
}

const layerRow = (
  entry: string,
  publicName: string,
  factory: (args: never) => tf.layers.Layer,
  typo: Row['typo'],
  valid: Record<string, unknown>,
  base: Record<string, unknown> = { rate: 0.1 },
): Row => ({
  entry,
  owner: `${publicName} 'strict_${entry}'`,
  call: (o) => factory({ name: `strict_${entry}`, ...o } as never),
  typo,
  valid,
  base,
});

const ROWS: Row[] = [
  layerRow(
    'batchNorm',
    'BatchNorm',
    layers.batchNorm,
    ['varianceCorection', 'biased', 'varianceCorrection'],
    { varianceCorrection: 'biased', momentum: null, axis: -1, inputShape: [3] },
    {},
  ),
  layerRow('dropout', 'Dropout', layers.dropout, ['noise_shape', [1, 1], 'noiseShape'], {
    noiseShape: [null, 1],
    mode: 'classic',
    seed: 2,
  }),
  layerRow(
    'spatialDropout1d',
    'SpatialDropout1D',
    layers.spatialDropout1d,
    ['data_format', 'channelsFirst', 'dataFormat'],
    { dataFormat: 'channelsFirst' },
  ),
  layerRow(
    'spatialDropout2d',
    'SpatialDropout2D',
    layers.spatialDropout2d,
    ['dataformat', 'channelsFirst', 'dataFormat'],
    { dataFormat: 'channelsFirst', trainable: false },
  ),
  layerRow(
    'spatialDropout3d',
    'SpatialDropout3D',
    layers.spatialDropout3d,
    ['DataFormat', 'channelsFirst', 'dataFormat'],
    { dataFormat: 'channelsLast', batchInputShape: [null, 2, 2, 2, 1] },
  ),
  layerRow('gaussianDropout', 'GaussianDropout', layers.gaussianDropout, ['Seed', 1, 'seed'], {
    seed: 1,
    dtype: 'float32',
  }),
  layerRow('alphaDropout', 'AlphaDropout', layers.alphaDropout, ['noiseshape', [1], 'noiseShape'], {
    noiseShape: [null, 1],
    inputShape: [4],
    batchSize: 2,
  }),
  layerRow(
    'dropConnectDense',
    'DropConnectDense',
    layers.dropConnectDense,
    ['kernel_initializer', 'zeros', 'kernelInitializer'],
    { kernelInitializer: 'zeros', inputDim: 4, dropBias: true, activation: 'relu' },
    { rate: 0.1, units: 2 },
  ),
  layerRow('dropBlock2d', 'DropBlock2D', layers.dropBlock2d, ['block_size', 3, 'blockSize'], {
    blockSize: 3,
    dataFormat: 'channelsFirst',
  }),
  layerRow('dropPath', 'DropPath', layers.dropPath, ['input_shape', [4], 'inputShape'], {
    inputShape: [4],
    inputDType: 'float32',
  }),
  layerRow(
    'groupNorm',
    'GroupNorm',
    layers.groupNorm,
    ['group', 4, 'groups'],
    { groups: 4, axis: 1, epsilon: 1e-5, gammaInitializer: 'zeros', betaConstraint: 'nonNeg' },
    {},
  ),
  layerRow(
    'instanceNorm',
    'InstanceNorm',
    layers.instanceNorm,
    ['beta_initializer', 'zeros', 'betaInitializer'],
    { betaInitializer: 'zeros', center: false, groups: -1 },
    {},
  ),
  layerRow(
    'rmsNorm',
    'RMSNorm',
    layers.rmsNorm,
    ['axes', [-1], 'axis'],
    { axis: [-2, -1], epsilon: 1e-5 },
    {},
  ),
  {
    entry: 'new BatchNorm',
    owner: "BatchNorm 'strict_class'",
    call: (o) => new BatchNorm({ name: 'strict_class', ...o }),
    typo: ['momentun', 0.9, 'momentum'],
    valid: { momentum: 0.9, epsilon: 1e-5, center: false },
  },
  {
    entry: 'clipOptimizer',
    owner: 'clipOptimizer',
    call: (o) => clipOptimizer(tf.train.sgd(0.1), o),
    typo: ['clipnorm', 1, 'clipNorm'],
    valid: { clipNorm: 1, nonFinite: 'skip' },
  },
  {
    entry: 'new ClipOptimizer',
    owner: 'clipOptimizer',
    call: (o) => new ClipOptimizer(tf.train.sgd(0.1), o),
    typo: ['global_clipnorm', 1, 'globalClipNorm'],
    valid: { globalClipNorm: 1 },
  },
  {
    entry: 'foldBatchNorm',
    owner: 'foldBatchNorm',
    call: (o) => foldBatchNorm(mlp(), o).model.dispose(),
    typo: ['fuseActivation', true, 'fuseActivations'],
    valid: { fuseActivations: true },
  },
  {
    entry: 'exportForInference',
    owner: 'exportForInference',
    call: (o) => exportForInference(mlp(), o).model.dispose(),
    typo: ['fuseActivation', true, 'fuseActivations'],
    valid: { fuseActivations: false },
  },
  {
    entry: 'saveForInference',
    owner: 'saveForInference',
    call: (o) =>
      saveForInference(
        mlp(),
        tf.io.withSaveHandler(async () => ({
          modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' },
        })),
        o,
      ),
    typo: ['quantise', 'uint8', 'quantize'],
    valid: { quantize: 'uint8', calibration: x, maxBytesRatio: 0.5 },
  },
  {
    entry: 'recalibrateBatchNorm',
    owner: 'recalibrateBatchNorm',
    call: (o) => recalibrateBatchNorm(mlp(), x, o),
    typo: ['batch_size', 2, 'batchSize'],
    valid: { batchSize: 2 },
  },
  {
    entry: 'mcPredict',
    owner: 'mcPredict',
    call: (o) => {
      const { mean, variance, samples } = mcPredict(mlp(), x, o);
      tf.dispose([mean, variance, ...(samples ? [samples] : [])]);
    },
    typo: ['sample', 3, 'samples'],
    valid: { samples: 3, seed: 1, batchSize: 4, keepSamples: true, onProgress: () => undefined },
  },
  {
    entry: 'mcPredictAsync',
    owner: 'mcPredictAsync',
    call: async (o) => {
      const { mean, variance } = await mcPredictAsync(mlp(), x, o);
      tf.dispose([mean, variance]);
    },
    typo: ['keep_samples', true, 'keepSamples'],
    valid: { samples: 2, seed: 1 },
  },
  {
    entry: 'new DropRateScheduler',
    owner: 'DropRateScheduler',
    call: (o) => new DropRateScheduler(o as never),
    typo: ['step', 2, 'steps'],
    valid: { steps: 2, start: 0.1, unit: 'batch', layers: ['drop'] },
  },
  {
    entry: 'convertToDropnorm',
    owner: 'convertToDropnorm',
    call: (o) => convertToDropnorm(mlp(), o).model.dispose(),
    typo: ['variance_correction', 'biased', 'varianceCorrection'],
    valid: { varianceCorrection: 'biased', mcDropout: true },
  },
  {
    entry: 'rewriteModel',
    owner: 'rewriteModel',
    call: (o) => rewriteModel(mlp(), new Map(), o).dispose(),
    typo: ['Name', 'copy', 'name'],
    valid: { name: 'copy', owner: 'myTransform' },
  },
  {
    entry: 'gradientNorms',
    owner: 'gradientNorms',
    call: (o) => gradientNorms(mlp(), x, y, { loss: 'meanSquaredError', ...o }),
    typo: ['trainig', false, 'training'],
    valid: { training: false },
  },
  {
    entry: 'activationStats',
    owner: 'activationStats',
    call: (o) => activationStats(mlp(), x, o),
    typo: ['Training', false, 'training'],
    valid: { training: false },
  },
  {
    entry: 'new GradientFlow',
    owner: 'GradientFlow',
    call: (o) => new GradientFlow({ x, y, ...o }),
    typo: ['evry', 2, 'every'],
    valid: { every: 2, unit: 'batch', atTrainBegin: true, activations: false },
  },
  {
    entry: 'pickBackend',
    owner: 'pickBackend',
    call: (o) => pickBackend({ log: () => undefined, ...o }),
    typo: ['backnd', 'cpu', 'backend'],
    valid: { backend: 'cpu', argv: [], env: {}, training: true },
  },
  {
    entry: 'ops.dropout',
    owner: 'ops.dropout',
    call: (o) => ops.dropout(x, 0.5, o).dispose(),
    typo: ['noise_shape', [6, 1], 'noiseShape'],
    valid: { noiseShape: [6, 1], seed: 1, mode: 'classic' },
  },
  {
    entry: 'ops.spatialDropout',
    owner: 'ops.spatialDropout',
    call: (o) => ops.spatialDropout(tf.ones([2, 3, 4]), 0.5, o).dispose(),
    typo: ['data_format', 'channelsFirst', 'dataFormat'],
    valid: { dataFormat: 'channelsFirst', seed: 1 },
  },
  {
    entry: 'ops.alphaDropout',
    owner: 'ops.alphaDropout',
    call: (o) => ops.alphaDropout(x, 0.1, o).dispose(),
    typo: ['Seed', 1, 'seed'],
    valid: { seed: 1, noiseShape: [6, 1] },
  },
  {
    entry: 'ops.dropBlock2d',
    owner: 'ops.dropBlock2d',
    call: (o) => ops.dropBlock2d(tf.ones([1, 4, 4, 2]), 0.2, 2, o).dispose(),
    typo: ['dataformat', 'channelsLast', 'dataFormat'],
    valid: { dataFormat: 'channelsLast', seed: 1 },
  },
];

/** The error `run` throws or rejects with (undefined when it succeeds). */
async function errorOf(run: () => unknown): Promise<unknown> {
  try {
    await run();
  } catch (e) {
    return e;
  }
  return undefined;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('strict options: every public entry point', () => {
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  describe.each(ROWS)('$entry', (row) => {
    const [key, value, suggestion] = row.typo;

    it(`rejects the misspelt '${key}', naming the owner, the key and '${suggestion}'`, async () => {
      const error = await errorOf(() => row.call({ ...row.base, [key]: value }));
      expect(error).toBeInstanceOf(DropnormValueError);
      const kind = row.owner.includes("'") ? 'argument' : 'option';
      expect((error as Error).message).toMatch(
        new RegExp(
          `^${escape(row.owner)}: unknown ${kind} '${escape(key)}' ` +
            `\\(did you mean '${escape(suggestion)}'\\?\\)\\. Accepted ${kind}s: .*\\b${suggestion}\\b`,
        ),
      );
    });

    it('still works with valid options', async () => {
      expect(await errorOf(() => row.call({ ...row.base, ...row.valid }))).toBeUndefined();
    });
  });

  it('rejects options that are not an object (Keras positional style)', () => {
    expect(() => layers.dropout(0.5 as never)).toThrow(
      /^Dropout '.*': expected arguments to be an object of named arguments, received: arguments=0\.5\. Pass them by name, e.g\. \{rate: …\}/,
    );
    expect(() => clipOptimizer(tf.train.sgd(0.1), 1 as never)).toThrow(
      /^clipOptimizer: expected options to be an object of named options, received: options=1/,
    );
  });

  it('a layer lists its own arguments first, then the tf.layers.Layer ones', () => {
    expect(() => layers.dropPath({ rate: 0.1, name: 'p', drop_prob: 0.1 } as never)).toThrow(
      "DropPath 'p': unknown argument 'drop_prob'. Accepted arguments: mcDropout, rate, seed, and the " +
        'tf.layers.Layer arguments batchInputShape, batchSize, dtype, inputDType, inputShape, ' +
        'name, trainable, weights.',
    );
  });

  it('fileSystem takes one location and no options: anything but a path string is an error', () => {
    for (const bad of [{ path: '/tmp/m' }, ['/tmp/m/model.json', '/tmp/m/weights.bin'], '']) {
      expect(() => fileSystem(bad as never)).toThrow(DropnormValueError);
      expect(() => fileSystem(bad as never)).toThrow(
        /^fileSystem: expected location to be a directory path or a 'file:\/\/' URL/,
      );
    }
    expect(() => fileSystem('/tmp/strict-options-model')).not.toThrow();
  });

  it('every layer class accepts the tf.layers.Layer arguments (compile-time and run-time)', () => {
    expect(baseArgsAreTfjsLayerArgs).toBe(true);
    for (const cls of LAYER_CLASSES) {
      for (const key of BASE_LAYER_ARGS) expect(cls.acceptedArgs).toContain(key);
    }
  });
});

describe('the Why of issue 11: unknown options were silently ignored', () => {
  it("clipOptimizer(opt, {clipnorm: 1}) (Keras's spelling) is an error, not a no-op", () => {
    expect(() => clipOptimizer(tf.train.sgd(0.1), { clipnorm: 1 } as never)).toThrow(
      "clipOptimizer: unknown option 'clipnorm' (did you mean 'clipNorm'?)",
    );
  });

  it("varianceCorection: 'biased' and block_size: 3 are errors; the built-ins ignore such keys", () => {
    expect(() => layers.batchNorm({ varianceCorection: 'biased' } as never)).toThrow(
      /unknown argument 'varianceCorection' \(did you mean 'varianceCorrection'\?\)/,
    );
    expect(() => layers.dropBlock2d({ rate: 0.1, block_size: 3 } as never)).toThrow(
      /unknown argument 'block_size' \(did you mean 'blockSize'\?\)/,
    );
    // tfjs 4.22's layers ignore unknown keys: a typo trains with the default.
    const builtinBn = tf.layers.batchNormalization({ momentun: 0.5 } as never);
    expect(builtinBn.getConfig().momentum).toBe(0.99);
    const builtinDrop = tf.layers.dropout({ rate: 0.5, noise_shape: [1, 1] } as never);
    expect(builtinDrop.getConfig().noiseShape).toBeUndefined();
  });
});

/** Every layer class of the pack: the registered classes but the optimizer wrapper. */
const LAYER_CLASSES = PACK_CLASSES.filter(
  (c): c is Exclude<(typeof PACK_CLASSES)[number], typeof ClipOptimizer> => c !== ClipOptimizer,
);

interface RoundTrip {
  name: string;
  /** The layer as the first layer of a model (so its config carries batchInputShape and dtype). */
  first: () => tf.layers.Layer;
  /** The layer after a dense layer (its config has only name and trainable of the base keys). */
  later: () => tf.layers.Layer;
  inputShape: number[];
  /** The serialization name, when not `Dropnorm<name>` (the Keras / Addons names). */
  className?: string;
}

const ROUND_TRIPS: RoundTrip[] = [
  {
    name: 'BatchNorm',
    first: () =>
      layers.batchNorm({
        inputShape: [3],
        momentum: null,
        varianceCorrection: 'biased',
        gammaRegularizer: 'l1l2',
        betaConstraint: 'nonNeg',
      }),
    later: () => layers.batchNorm({ axis: 1, trainable: false }),
    inputShape: [3],
  },
  {
    name: 'Dropout',
    first: () =>
      layers.dropout({
        rate: 0.3,
        seed: 5,
        noiseShape: [null, 1],
        mode: 'classic',
        inputShape: [3],
      }),
    later: () => layers.dropout({ rate: 0.1 }),
    inputShape: [3],
  },
  {
    name: 'SpatialDropout1D',
    first: () =>
      layers.spatialDropout1d({ rate: 0.2, dataFormat: 'channelsFirst', inputShape: [2, 3] }),
    later: () => layers.spatialDropout1d({ rate: 0.2 }),
    inputShape: [2, 3],
  },
  {
    name: 'SpatialDropout2D',
    first: () => layers.spatialDropout2d({ rate: 0.2, seed: 1, inputShape: [2, 2, 3] }),
    later: () => layers.spatialDropout2d({ rate: 0.2, dataFormat: 'channelsFirst' }),
    inputShape: [2, 2, 3],
  },
  {
    name: 'SpatialDropout3D',
    first: () => layers.spatialDropout3d({ rate: 0.2, inputShape: [2, 2, 2, 3] }),
    later: () => layers.spatialDropout3d({ rate: 0.2 }),
    inputShape: [2, 2, 2, 3],
  },
  {
    name: 'GaussianDropout',
    first: () => layers.gaussianDropout({ rate: 0.2, seed: 3, inputShape: [3], dtype: 'float32' }),
    later: () => layers.gaussianDropout({ rate: 0.2 }),
    inputShape: [3],
  },
  {
    name: 'AlphaDropout',
    first: () =>
      layers.alphaDropout({ rate: 0.2, noiseShape: [null, 1], batchInputShape: [null, 3] }),
    later: () => layers.alphaDropout({ rate: 0.2 }),
    inputShape: [3],
  },
  {
    name: 'DropConnectDense',
    first: () =>
      layers.dropConnectDense({
        rate: 0.2,
        units: 3,
        inputDim: 3,
        activation: 'tanh',
        dropBias: true,
        kernelRegularizer: 'l1l2',
        biasConstraint: 'maxNorm',
      }),
    later: () => layers.dropConnectDense({ rate: 0.2, units: 3, useBias: false }),
    inputShape: [3],
  },
  {
    name: 'DropBlock2D',
    first: () =>
      layers.dropBlock2d({
        rate: 0.2,
        blockSize: 2,
        dataFormat: 'channelsLast',
        inputShape: [4, 4, 3],
      }),
    later: () => layers.dropBlock2d({ rate: 0.2, blockSize: 1 }),
    inputShape: [4, 4, 3],
  },
  {
    name: 'DropPath',
    first: () => layers.dropPath({ rate: 0.2, seed: 9, inputShape: [3], trainable: false }),
    later: () => layers.dropPath({ rate: 0.2 }),
    inputShape: [3],
  },
  {
    name: 'GroupNorm',
    className: 'GroupNormalization',
    first: () =>
      layers.groupNorm({
        groups: 2,
        inputShape: [3, 4],
        gammaRegularizer: 'l1l2',
        betaConstraint: 'nonNeg',
        epsilon: 1e-5,
      }),
    later: () => layers.groupNorm({ groups: 4, center: false }),
    inputShape: [3, 4],
  },
  {
    name: 'InstanceNorm',
    className: 'Addons>InstanceNormalization',
    first: () => layers.instanceNorm({ inputShape: [3, 4], gammaInitializer: 'zeros' }),
    later: () => layers.instanceNorm({ scale: false }),
    inputShape: [3, 4],
  },
  {
    name: 'RMSNorm',
    className: 'RMSNormalization',
    first: () => layers.rmsNorm({ inputShape: [3, 4], axis: [-2, -1] }),
    later: () => layers.rmsNorm({ epsilon: 1e-5 }),
    inputShape: [3, 4],
  },
];

/** Saves `model` to memory and loads it back with tf.loadLayersModel (tfjs's deserializer). */
async function saveAndLoad(model: tf.LayersModel): Promise<tf.LayersModel> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return tf.loadLayersModel(tf.io.fromMemory(saved!));
}

describe('strict options: every config getConfig writes still loads', () => {
  describe.each(ROUND_TRIPS)('$name', ({ name, first, later, inputShape, className }) => {
    function nested(): tf.LayersModel {
      const input = tf.input({ shape: inputShape });
      return tf.model({ inputs: input, outputs: later().apply(input) as tf.SymbolicTensor });
    }

    function model(): tf.Sequential {
      const channels = inputShape[inputShape.length - 1];
      return tf.sequential({
        layers: [
          first(),
          tf.layers.dense({ units: channels }),
          later(),
          // A nested model: loading goes through Container.fromConfig as well.
          nested(),
        ],
      });
    }

    it('saves and loads through tf.io memory handlers, same config and same inference output', async () => {
      const original = model();
      expect(original.layers[0].getClassName()).toBe(className ?? `Dropnorm${name}`);
      const loaded = await saveAndLoad(original);
      const input = tf.randomNormal([2, ...inputShape], 0, 1, 'float32', 7);
      // An initializer's seed comes back null where it was undefined; nothing else may differ.
      const configs = (m: tf.LayersModel) =>
        JSON.parse(
          JSON.stringify(
            m.layers.map((l) => l.getConfig()),
            (_, v) => v ?? null,
          ),
        );
      expect(configs(loaded)).toEqual(configs(original));
      expect(
        maxAbsDiff(loaded.predict(input) as tf.Tensor, original.predict(input) as tf.Tensor),
      ).toBe(0);
    });

    it('fromConfig(getConfig()) gives the same config, for the first and a later layer', () => {
      const original = model();
      for (const layer of [original.layers[0], original.layers[2]]) {
        const cls = layer.constructor as typeof tf.layers.Layer;
        const config = layer.getConfig();
        expect(Object.keys(config)).toEqual(expect.arrayContaining(['name', 'trainable']));
        const copy = tf.layers.Layer.fromConfig(
          cls as never,
          JSON.parse(JSON.stringify(config)),
        ) as tf.layers.Layer;
        expect(copy.getConfig()).toEqual(config);
      }
      // The first layer's config carries tfjs's base keys batchInputShape and dtype.
      expect(Object.keys(original.layers[0].getConfig())).toEqual(
        expect.arrayContaining(['batchInputShape', 'dtype']),
      );
    });
  });
});

/**
 * Strict option types (issue 20, item 7): a value of the wrong type is an error as clear as an
 * unknown key, naming the owner, the argument, the value and the fix; before, `momentum: '0.9'`,
 * `center: 'no'`, `scale: 0` and `dropBias: 'yes'` were read by truthiness or coerced.
 */
interface TypeRow {
  entry: string;
  /** The message must start with this owner. */
  owner: string;
  call: (options: Record<string, unknown>) => unknown;
  /** The argument, the wrong value, and what the message says it should be. */
  bad: [string, unknown, string];
  base?: Record<string, unknown>;
}

const layerType = (
  entry: string,
  publicName: string,
  factory: (args: never) => tf.layers.Layer,
  bad: TypeRow['bad'],
  base: Record<string, unknown> = { rate: 0.1 },
): TypeRow => ({
  entry: `${entry} ${bad[0]}=${JSON.stringify(bad[1])}`,
  owner: `${publicName} 'types_${entry}'`,
  call: (o) => factory({ name: `types_${entry}`, ...o } as never),
  bad,
  base,
});

const TYPE_ROWS: TypeRow[] = [
  layerType(
    'batchNorm',
    'BatchNorm',
    layers.batchNorm,
    ['momentum', '0.9', 'a number or null'],
    {},
  ),
  layerType('batchNorm', 'BatchNorm', layers.batchNorm, ['momentum', '', 'a number or null'], {}),
  layerType(
    'batchNorm',
    'BatchNorm',
    layers.batchNorm,
    ['momentum', [0.5], 'a number or null'],
    {},
  ),
  layerType('batchNorm', 'BatchNorm', layers.batchNorm, ['center', 'no', 'true or false'], {}),
  layerType('batchNorm', 'BatchNorm', layers.batchNorm, ['scale', 0, 'true or false'], {}),
  layerType('batchNorm', 'BatchNorm', layers.batchNorm, ['epsilon', '1e-3', 'a number'], {}),
  layerType('batchNorm', 'BatchNorm', layers.batchNorm, ['renorm', 1, 'true or false'], {}),
  layerType(
    'batchNorm',
    'BatchNorm',
    layers.batchNorm,
    ['trainable', 'false', 'true or false'],
    {},
  ),
  layerType('dropout', 'Dropout', layers.dropout, ['rate', '0.5', 'a number']),
  layerType('dropout', 'Dropout', layers.dropout, ['mcDropout', 'yes', 'true or false']),
  layerType('dropout', 'Dropout', layers.dropout, ['noiseShape', '1', 'a shape']),
  layerType('dropout', 'Dropout', layers.dropout, ['seed', '7', 'a number or null']),
  layerType('gaussianDropout', 'GaussianDropout', layers.gaussianDropout, [
    'seed',
    true,
    'a number or null',
  ]),
  layerType('alphaDropout', 'AlphaDropout', layers.alphaDropout, ['noiseShape', [1.5], 'a shape']),
  layerType(
    'dropConnectDense',
    'DropConnectDense',
    layers.dropConnectDense,
    ['dropBias', 'yes', 'true or false'],
    { rate: 0.1, units: 2 },
  ),
  layerType(
    'dropConnectDense',
    'DropConnectDense',
    layers.dropConnectDense,
    ['useBias', 0, 'true or false'],
    { rate: 0.1, units: 2 },
  ),
  layerType('dropBlock2d', 'DropBlock2D', layers.dropBlock2d, ['blockSize', '3', 'a number']),
  layerType('dropPath', 'DropPath', layers.dropPath, ['mcDropout', 1, 'true or false']),
  layerType('spatialDropout2d', 'SpatialDropout2D', layers.spatialDropout2d, [
    'dataFormat',
    1,
    'a string',
  ]),
  // The normalizations of issue 22 (their argTypes: groups/axis integers, epsilon a number, …).
  layerType('groupNorm', 'GroupNorm', layers.groupNorm, ['center', 'no', 'true or false'], {}),
  layerType('groupNorm', 'GroupNorm', layers.groupNorm, ['epsilon', '1e-3', 'a number'], {}),
  layerType('groupNorm', 'GroupNorm', layers.groupNorm, ['axis', '1', 'an integer'], {}),
  layerType('groupNorm', 'GroupNorm', layers.groupNorm, ['axis', 1.5, 'an integer'], {}),
  // groups keeps its own, more precise message (a positive integer or -1).
  layerType('groupNorm', 'GroupNorm', layers.groupNorm, ['groups', '4', 'a positive integer'], {}),
  layerType('instanceNorm', 'InstanceNorm', layers.instanceNorm, ['scale', 0, 'true or false'], {}),
  layerType(
    'addonsGroupNormalization',
    'AddonsGroupNormalization',
    (a: never) => new AddonsGroupNormalization(a),
    ['trainable', 'false', 'true or false'],
    {},
  ),
  layerType('rmsNorm', 'RMSNorm', layers.rmsNorm, ['epsilon', '1e-6', 'a number'], {}),
  layerType('rmsNorm', 'RMSNorm', layers.rmsNorm, ['epsilon', [1e-6], 'a number'], {}),
  // axis keeps its own, more precise message (an integer or a non-empty list of integers).
  layerType(
    'rmsNorm',
    'RMSNorm',
    layers.rmsNorm,
    ['axis', '1', 'an integer or a non-empty list'],
    {},
  ),
  {
    entry: 'clipOptimizer clipNorm="1"',
    owner: 'clipOptimizer',
    call: (o) => clipOptimizer(tf.train.sgd(0.1), o),
    bad: ['clipNorm', '1', 'a number'],
  },
  {
    entry: 'clipOptimizer nonFinite="ignore"',
    owner: 'clipOptimizer',
    call: (o) => clipOptimizer(tf.train.sgd(0.1), o),
    bad: ['nonFinite', 'ignore', `one of "throw", "skip"`],
  },
  {
    entry: 'gradientNorms training="yes"',
    owner: 'gradientNorms',
    call: (o) => gradientNorms(mlp(), x, y, { loss: 'meanSquaredError', ...o }),
    bad: ['training', 'yes', 'true or false'],
  },
  {
    entry: 'new GradientFlow unit="epochs"',
    owner: 'GradientFlow',
    call: (o) => new GradientFlow({ x, y, ...o }),
    bad: ['unit', 'epochs', 'one of "epoch", "batch"'],
  },
  {
    entry: 'new GradientFlow activations=0',
    owner: 'GradientFlow',
    call: (o) => new GradientFlow({ x, y, ...o }),
    bad: ['activations', 0, 'true or false'],
  },
  {
    entry: 'activationStats training=1',
    owner: 'activationStats',
    call: (o) => activationStats(mlp(), x, o),
    bad: ['training', 1, 'true or false'],
  },
  {
    entry: "pickBackend training='yes'",
    owner: 'pickBackend',
    call: (o) => pickBackend({ log: () => undefined, argv: [], env: {}, ...o }),
    bad: ['training', 'yes', 'true or false'],
  },
  {
    entry: 'recalibrateBatchNorm batchSize="2"',
    owner: 'recalibrateBatchNorm',
    call: (o) => recalibrateBatchNorm(mlp(), x, o),
    bad: ['batchSize', '2', 'a number'],
  },
  {
    entry: 'ops.dropout seed="1"',
    owner: 'ops.dropout',
    call: (o) => ops.dropout(x, 0.5, o),
    bad: ['seed', '1', 'a number'],
  },
  {
    entry: 'ops.dropout mode="dropconnect"',
    owner: 'ops.dropout',
    call: (o) => ops.dropout(x, 0.5, o),
    bad: ['mode', 'dropconnect', 'one of "inverted", "classic"'],
  },
  {
    entry: 'ops.spatialDropout dataFormat="NCW"',
    owner: 'ops.spatialDropout',
    call: (o) => ops.spatialDropout(tf.ones([2, 3, 4]), 0.5, o),
    bad: ['dataFormat', 'NCW', 'one of "channelsLast", "channelsFirst"'],
  },
  {
    entry: 'ops.gaussianDropout seed="1" (positional)',
    owner: 'ops.gaussianDropout',
    call: (o) => ops.gaussianDropout(x, 0.5, o.seed as never),
    bad: ['seed', '1', 'a number'],
  },
  {
    entry: 'ops.dropPath seed="1" (positional)',
    owner: 'ops.dropPath',
    call: (o) => ops.dropPath(x, 0.5, o.seed as never),
    bad: ['seed', '1', 'a number'],
  },
  {
    entry: 'ops.dropConnect seed=[1] (positional)',
    owner: 'ops.dropConnect',
    call: (o) => ops.dropConnect(x, 0.5, o.seed as never),
    bad: ['seed', [1], 'a number'],
  },
  {
    entry: 'ops.spatialDropout rate="0.5" names ops.spatialDropout (not ops.dropout)',
    owner: 'ops.spatialDropout',
    call: (o) => ops.spatialDropout(tf.ones([2, 3, 4]), o.rate as never),
    bad: ['rate', '0.5', 'a number in [0, 1)'],
  },
  {
    entry: 'ops.dropBlock2d dataFormat="NHWC"',
    owner: 'ops.dropBlock2d',
    call: (o) => ops.dropBlock2d(tf.ones([1, 4, 4, 2]), 0.2, 2, o),
    bad: ['dataFormat', 'NHWC', `one of "channelsLast", "channelsFirst"`],
  },
];

describe('strict option types: a value of the wrong type is an error', () => {
  it.each(TYPE_ROWS.map((r) => [r.entry, r]))('%s', async (_entry, row) => {
    const [arg, value, expected] = row.bad;
    const error = await errorOf(() => row.call({ ...row.base, [arg]: value }));
    expect(error).toBeInstanceOf(DropnormValueError);
    expect((error as Error).message).toMatch(
      new RegExp(
        `^${escape(row.owner)}: expected ${escape(arg)} to be ${escape(expected)}.*, ` +
          `received: ${escape(arg)}=${escape(JSON.stringify(value))}\\. \\S`,
      ),
    );
  });

  it('the fix names the value the user most likely meant', () => {
    expect(() => layers.batchNorm({ name: 'f', momentum: '0.9' } as never)).toThrow(
      `BatchNorm 'f': expected momentum to be a number or null, received: momentum="0.9". ` +
        'Write momentum: 0.9 (not a string).',
    );
    expect(() => layers.batchNorm({ name: 'f', momentum: [0.5] } as never)).toThrow(
      'Write momentum: 0.5 (not a list).',
    );
    expect(() => layers.batchNorm({ name: 'f', center: 'no' } as never)).toThrow(
      `BatchNorm 'f': expected center to be true or false, received: center="no". Pass true or ` +
        'false (nothing is read by truthiness), or leave center out for the default.',
    );
  });

  it('a JSON config (tf.loadLayersModel) gets the same error as plain JavaScript', async () => {
    let saved: tf.io.ModelArtifacts | undefined;
    await mlp().save(
      tf.io.withSaveHandler(async (artifacts) => {
        saved = artifacts;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const topology = saved!.modelTopology as {
      config: { layers: { class_name: string; config: Record<string, unknown> }[] };
    };
    const bn = topology.config.layers.find((l) => l.class_name === 'DropnormBatchNorm')!;
    bn.config.center = 'no';
    await expect(tf.loadLayersModel(tf.io.fromMemory(saved!))).rejects.toThrow(
      /^BatchNorm 'bn': expected center to be true or false, received: center="no"\./,
    );
    bn.config.center = true;
    bn.config.momentum = '0.9';
    await expect(tf.loadLayersModel(tf.io.fromMemory(saved!))).rejects.toThrow(
      /^BatchNorm 'bn': expected momentum to be a number or null, received: momentum="0\.9"\./,
    );
  });

  it('a GroupNorm or RMSNorm JSON config gets the same type errors as plain JavaScript', async () => {
    const model = tf.sequential({
      layers: [
        layers.groupNorm({ groups: 2, name: 'gn', inputShape: [3, 4] }),
        layers.rmsNorm({ name: 'rms' }),
      ],
    });
    let saved: tf.io.ModelArtifacts | undefined;
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        saved = artifacts;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    model.dispose();
    const topology = saved!.modelTopology as {
      config: { layers: { class_name: string; config: Record<string, unknown> }[] };
    };
    const [gn, rms] = topology.config.layers;
    gn.config.center = 'no';
    await expect(tf.loadLayersModel(tf.io.fromMemory(saved!))).rejects.toThrow(
      /^GroupNorm 'gn': expected center to be true or false, received: center="no"\./,
    );
    gn.config.center = true;
    rms.config.epsilon = '1e-6';
    await expect(tf.loadLayersModel(tf.io.fromMemory(saved!))).rejects.toThrow(
      /^RMSNorm 'rms': expected epsilon to be a number, received: epsilon="1e-6"\. Write epsilon: 0\.000001/,
    );
  });

  it('layers.dropout() with no argument asks for the rate', () => {
    expect(() => (layers.dropout as () => unknown)()).toThrow(
      /^Dropout '.*': expected arguments to be an object with at least rate, received: arguments=undefined\. Pass the drop probability by name, e\.g\. \{rate: 0\.5\}\./,
    );
    expect(() => (layers.dropPath as () => unknown)()).toThrow(DropnormValueError);
  });

  it('pickBackend with a bare --backend is an error, not the default backend', async () => {
    for (const argv of [
      ['node', 'x.js', '--backend'],
      ['node', 'x.js', '--backend', '--fast'],
      ['--backend='],
    ]) {
      await expect(pickBackend({ argv, env: {}, log: () => undefined })).rejects.toThrow(
        /^pickBackend: expected --backend to be followed by a backend name \(tensorflow, wasm, cpu\), received: --backend="--backend=?"\. Write e\.g\. --backend wasm/,
      );
    }
  });

  it('ops.dropBlock2d with a block larger than the map, or a non-integer block, is an error', () => {
    const before = tf.memory().numTensors;
    const x4 = tf.ones([1, 4, 4, 1]);
    expect(() => ops.dropBlock2d(x4, 0.2, 5)).toThrow(
      /^ops\.dropBlock2d: expected blockSize to be at most the feature map's height and width \(4×4\), received: blockSize=5\./,
    );
    expect(() => ops.dropBlock2d(x4, 0.2, 1.5)).toThrow(
      /^ops\.dropBlock2d: expected blockSize to be a positive integer, received: blockSize=1\.5\./,
    );
    expect(() => ops.dropBlock2d(tf.ones([4, 4, 1]), 0.2, 2)).toThrow(
      /^ops\.dropBlock2d: expected x to be a rank-4 tensor/,
    );
    tf.dispose(x4);
    expect(tf.memory().numTensors).toBe(before + 1); // the rank-3 ones above, owned by the test
  });

  it('ops.entropy: structural misuse is an error; non-probabilities give NaN, not a number', async () => {
    expect(() => ops.entropy(tf.tensor2d([[0.3], [0.7]]))).toThrow(
      /^entropy: expected probs to have ≥ 2 classes on the last axis for kind 'categorical'.*use kind 'binary'/,
    );
    expect(() => ops.entropy(tf.tensor1d([0, 1], 'int32'))).toThrow(
      /^entropy: expected probs to be a float32 tensor of probabilities/,
    );
    // Logits [2, 3] used to give −4.68 nats; a row summing to 0.9 and p = 1.5 give NaN.
    const h = ops.entropy(
      tf.tensor2d([
        [2, 3],
        [0.5, 0.4],
        [0.25, 0.75],
      ]),
    );
    const hv = await h.array();
    expect(Number.isNaN((hv as number[])[0])).toBe(true);
    expect(Number.isNaN((hv as number[])[1])).toBe(true);
    expect((hv as number[])[2]).toBeCloseTo(-(0.25 * Math.log(0.25) + 0.75 * Math.log(0.75)), 6);
    const hb = (await ops.entropy(tf.tensor1d([-0.5, 1.5, 0.5]), 'binary').array()) as number[];
    expect([Number.isNaN(hb[0]), Number.isNaN(hb[1])]).toEqual([true, true]);
    expect(hb[2]).toBeCloseTo(Math.log(2), 6);
  });
});

describe('mcPredictAsync whose input is disposed mid-run', () => {
  it('fails with a clear error naming x, and leaks nothing', async () => {
    const model = mlp();
    const input = tf.randomNormal([6, 4], 0, 1, 'float32', 9);
    const before = tf.memory().numTensors;
    let passes = 0;
    const run = mcPredictAsync(model, input, {
      samples: 5,
      seed: 1,
      onProgress: () => {
        if (++passes === 2) input.dispose();
      },
    });
    await expect(run).rejects.toThrow(
      /^mcPredictAsync: expected x to stay alive until the call returns, received: x="a disposed tensor of shape \[6,4\]"\. Dispose it after the promise resolves/,
    );
    expect(passes).toBe(2);
    expect(tf.memory().numTensors).toBe(before - 1); // only the input itself is gone
  });
});
