/**
 * Strict options (issue 11, item 4): every public entry point rejects an unknown option key with a
 * DropnormValueError naming the owner, the key and the nearest accepted key, and still works with
 * valid options; every config getConfig writes (ours and tfjs's base keys) still loads.
 */
import * as tf from '@tensorflow/tfjs';
import {
  activationStats,
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
    call: (o) => new DropRateScheduler(o),
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
