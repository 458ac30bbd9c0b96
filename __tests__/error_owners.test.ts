/**
 * Errors name what the user wrote (issue 11, item 6): the owner of every message about a layer is
 * its public class and name (`Dropout 'drop_a'`, never the serialization name `DropnormDropout`),
 * built by one helper (describeLayer), and the single-input helpers throw DropnormValueError.
 */
import * as tf from '@tensorflow/tfjs';
import {
  DropnormValueError,
  foldBatchNorm,
  foldBatchNormAsync,
  layers,
  recalibrateBatchNorm,
} from 'tfjs-dropnorm';

/** The error `run` throws. */
function errorOf(run: () => unknown): Error {
  try {
    run();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

// One bad argument per layer, each checked by the layer's own constructor.
const BAD_LAYERS: [string, () => tf.layers.Layer][] = [
  ['BatchNorm', () => layers.batchNorm({ name: 'n', momentum: 1 })],
  ['Dropout', () => layers.dropout({ name: 'n', rate: 1 })],
  [
    'SpatialDropout1D',
    () => layers.spatialDropout1d({ name: 'n', rate: 0.1, dataFormat: 'x' as never }),
  ],
  ['SpatialDropout2D', () => layers.spatialDropout2d({ name: 'n', rate: -1 })],
  ['SpatialDropout3D', () => layers.spatialDropout3d({ name: 'n', rate: 2 })],
  ['GaussianDropout', () => layers.gaussianDropout({ name: 'n', rate: NaN })],
  ['AlphaDropout', () => layers.alphaDropout({ name: 'n', rate: 0.1, noiseShape: 'x' as never })],
  ['DropConnectDense', () => layers.dropConnectDense({ name: 'n', rate: 0.1, units: 0 })],
  ['DropBlock2D', () => layers.dropBlock2d({ name: 'n', rate: 0.1, blockSize: 0 })],
  ['DropPath', () => layers.dropPath({ name: 'n', rate: 0.1, seed: Infinity })],
];

describe('error owners name the public class', () => {
  it.each(BAD_LAYERS)('%s', (publicName, make) => {
    const error = errorOf(make);
    expect(error).toBeInstanceOf(DropnormValueError);
    expect(error.message.startsWith(`${publicName} 'n': expected `)).toBe(true);
    expect(error.message).not.toMatch(/Dropnorm/);
  });

  it('a single-input layer given two inputs: DropnormValueError naming the layer (singleShape)', () => {
    const a = tf.input({ shape: [3] });
    const b = tf.input({ shape: [3] });
    const error = errorOf(() => layers.dropout({ rate: 0.1, name: 'drop_a' }).apply([a, b]));
    expect(error).toBeInstanceOf(DropnormValueError);
    expect(error.message).toBe(
      "Dropout 'drop_a': expected number of inputs to be 1 (the layer takes one input), " +
        'received: number of inputs=2. Received input shapes [[null,3],[null,3]]. Apply the ' +
        'layer to each input separately, or concatenate them first (tf.layers.concatenate).',
    );
  });

  it('a built layer called on two tensors: DropnormValueError naming the layer (singleTensor)', () => {
    const layer = layers.dropConnectDense({ rate: 0.1, units: 2, name: 'dc' });
    layer.apply(tf.zeros([1, 3]));
    const error = errorOf(() => layer.call([tf.zeros([1, 3]), tf.zeros([1, 3])], {}));
    expect(error).toBeInstanceOf(DropnormValueError);
    expect(error.message).toMatch(
      /^DropConnectDense 'dc': expected number of input tensors to be 1 \(the layer takes one input\), received: number of input tensors=2\./,
    );
  });

  it('BatchNorm given two inputs or two tensors names itself (singleShape, singleTensor)', () => {
    const a = tf.input({ shape: [3] });
    const two = errorOf(() => layers.batchNorm({ name: 'bn1' }).apply([a, a]));
    expect(two).toBeInstanceOf(DropnormValueError);
    expect(two.message).toMatch(/^BatchNorm 'bn1': expected number of inputs to be 1/);
    const built = layers.batchNorm({ name: 'bn2' });
    built.apply(tf.zeros([2, 3]));
    const call = errorOf(() => built.call([tf.zeros([2, 3]), tf.zeros([2, 3])], {}));
    expect(call).toBeInstanceOf(DropnormValueError);
    expect(call.message).toMatch(/^BatchNorm 'bn2': expected number of input tensors to be 1/);
  });

  describe('an unknown initializer, regularizer or constraint names the layer, argument and value', () => {
    const dc = (args: Record<string, unknown>) => () =>
      layers.dropConnectDense({ name: 'dc', rate: 0.1, units: 2, ...args });

    it('a misspelt initializer name, with the name it most likely meant', () => {
      const error = errorOf(dc({ kernelInitializer: 'glorotNormall' }));
      expect(error).toBeInstanceOf(DropnormValueError);
      expect(error.message).toMatch(
        /^DropConnectDense 'dc': expected kernelInitializer to be a tfjs initializer: a name \('zeros', 'ones', .*'glorotNormal'.*\), a \{className, config\} object, an instance, or a registered subclass, received: kernelInitializer="glorotNormall"\. Did you mean 'glorotNormal'\?$/,
      );
    });

    it.each([
      [
        'biasInitializer',
        { className: 'GlorotNormall', config: {} },
        "Did you mean 'GlorotNormal'?",
      ],
      ['kernelRegularizer', 'l1l3', "Did you mean 'l1l2'?"],
      ['biasRegularizer', 42, undefined],
      ['activityRegularizer', 'maxNorm', undefined], // a constraint, not a regularizer
      ['kernelConstraint', 'nonNegative', undefined],
      ['biasConstraint', 'unitnorm', "Did you mean 'unitNorm'?"],
    ])('%s = %j', (argument, value, hint) => {
      const error = errorOf(dc({ [argument]: value }));
      expect(error).toBeInstanceOf(DropnormValueError);
      expect(
        error.message.startsWith(`DropConnectDense 'dc': expected ${argument} to be a tfjs `),
      ).toBe(true);
      expect(error.message).toContain(`received: ${argument}=${JSON.stringify(value)}.`);
      if (hint) expect(error.message.endsWith(hint)).toBe(true);
      else expect(error.message).not.toMatch(/Did you mean/);
    });

    it.each([
      ['gammaInitializer', 'onez', "Did you mean 'ones'?"],
      ['movingVarianceInitializer', 'one', "Did you mean 'ones'?"],
      ['betaRegularizer', 'l1l3', "Did you mean 'l1l2'?"],
      ['gammaConstraint', 'nonNeg2', "Did you mean 'nonNeg'?"],
    ])('BatchNorm %s = %j', (argument, value, hint) => {
      const error = errorOf(() => layers.batchNorm({ name: 'bn', [argument]: value }));
      expect(error).toBeInstanceOf(DropnormValueError);
      expect(error.message.startsWith(`BatchNorm 'bn': expected ${argument} to be a tfjs `)).toBe(
        true,
      );
      expect(error.message).toContain(`received: ${argument}=${JSON.stringify(value)}.`);
      expect(error.message.endsWith(hint)).toBe(true);
    });

    it('a registered class of another kind is refused, not built (a layer as an initializer)', () => {
      const error = errorOf(dc({ kernelInitializer: 'dense' }));
      expect(error).toBeInstanceOf(DropnormValueError);
      expect(error.message).toMatch(
        /^DropConnectDense 'dc': expected kernelInitializer to be a tfjs initializer/,
      );
    });

    it('every kind of identifier still resolves, to what tf.layers.dense makes of it', () => {
      // The {className, config} form is outside the declared types, as for tf.layers.dense.
      const args: Record<string, unknown> = {
        units: 2,
        kernelInitializer: 'heNormal',
        biasInitializer: { className: 'Constant', config: { value: 0.5 } },
        kernelRegularizer: 'l1l2',
        biasRegularizer: tf.regularizers.l2({ l2: 0.1 }),
        kernelConstraint: 'maxNorm',
        biasConstraint: { className: 'NonNeg', config: {} },
      };
      const layer = layers.dropConnectDense({ name: 'ok', rate: 0.1, ...args } as never);
      const builtin = tf.layers.dense(args as never);
      layer.apply(tf.zeros([1, 3]));
      expect(Array.from(layer.getWeights()[1].dataSync())).toEqual([0.5, 0.5]);
      const ours = layer.getConfig();
      const theirs = builtin.getConfig();
      for (const key of Object.keys(args).filter((k) => k !== 'units')) {
        const className = (c: unknown) => (c as { className: string }).className;
        expect({ key, className: className(ours[key]) }).toEqual({
          key,
          className: className(theirs[key]),
        });
      }
      layer.dispose();
    });
  });

  it("foldBatchNorm's reasons and errors name layers by their public class", async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [3], units: 2, name: 'dense' }),
        layers.dropout({ rate: 0.1, name: 'drop' }),
        layers.batchNorm({ name: 'bn' }),
        layers.gaussianDropout({ rate: 0.1, name: 'noise' }),
      ],
    });
    const { model: folded, skipped } = foldBatchNorm(model);
    folded.dispose();
    expect(skipped).toHaveLength(1);
    expect(skipped[0].reason).toMatch(
      /the preceding layer Dropout 'drop' is not one of Dense.*the next layer GaussianDropout 'noise' is not one of Dense/,
    );
    expect(skipped[0].reason).not.toMatch(/Dropnorm/);
    const bn = model.getLayer('bn');
    const [g, b, m] = bn.getWeights();
    bn.setWeights([g, b, m, tf.tensor1d([1, NaN])]);
    // The statistics check reads values back, so it is the async form's (foldBatchNorm reads none).
    await expect(foldBatchNormAsync(model)).rejects.toThrow(
      /^foldBatchNormAsync: expected moving_variance of BatchNorm 'bn' to be finite/,
    );
  });

  it('recalibrateBatchNorm names a shared BN by its public class', async () => {
    const bn = layers.batchNorm({ name: 'shared' });
    const input = tf.input({ shape: [2] });
    const out = tf.layers.add().apply([bn.apply(input), bn.apply(input)] as tf.SymbolicTensor[]);
    const model = tf.model({ inputs: input, outputs: out as tf.SymbolicTensor });
    await expect(recalibrateBatchNorm(model, tf.ones([4, 2]))).rejects.toThrow(
      /^recalibrateBatchNorm: expected calls of BatchNorm 'shared' to be one/,
    );
  });
});
