import * as tf from '@tensorflow/tfjs';
import {
  BatchNorm,
  Dropout,
  CUMULATIVE_FALLBACK_MOMENTUM,
  PACK_CLASS_NAMES,
  convertToBuiltins,
  convertToDropnorm,
  layers as dn,
} from 'tfjs-dropnorm';
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
    const converted = convertToDropnorm(model);
    const bns = converted.layers.filter((l) => l instanceof BatchNorm) as BatchNorm[];
    expect(bns.length).toBe(2);
    expect(bns[0].momentum).toBe(0.9);
    expect(bns[0].epsilon).toBe(1e-2);
    expect(bns[0].varianceCorrection).toBe('unbiased');
    expect(bns[1].center).toBe(false);
    expect(classNamesInJson(converted)).not.toContain('BatchNormalization');
    expect(snapshotWeights(converted)).toEqual(snapshotWeights(model));
    const biased = convertToDropnorm(model, { varianceCorrection: 'biased' });
    expect(
      (biased.layers.find((l) => l instanceof BatchNorm) as BatchNorm).varianceCorrection,
    ).toBe('biased');
  });

  it('swaps the built-in Dropout for the pack Dropout and back, keeping rate, noiseShape, seed', () => {
    const ours = convertToDropnorm(builtinCnn());
    const drop = ours.layers.find((l) => l.getClassName() === Dropout.className) as Dropout;
    expect(drop).toBeInstanceOf(Dropout);
    expect([drop.rate, drop.seed, drop.noiseShape, drop.mode]).toEqual([
      0.3,
      7,
      [1, 48],
      'inverted',
    ]);
    const back = convertToBuiltins(ours).layers.find((l) => l.getClassName() === 'Dropout')!;
    expect(back.getConfig()).toMatchObject({ rate: 0.3, seed: 7, noiseShape: [1, 48] });
    const unseeded = convertToBuiltins(
      tf.sequential({ layers: [dn.dropout({ inputShape: [3], rate: 0.2 })] }),
    ).layers[1].getConfig();
    expect(unseeded.rate).toBe(0.2);
    expect(unseeded.seed).toBeUndefined();
  });

  it('refuses to convert a classic-mode Dropout to the built-in', () => {
    const model = tf.sequential({
      layers: [dn.dropout({ inputShape: [3], rate: 0.2, mode: 'classic', name: 'classic_drop' })],
    });
    expect(() => convertToBuiltins(model)).toThrow(
      /mode of Dropout 'classic_drop' to be 'inverted'.*received.*"classic"/,
    );
  });

  it('round trips give identical predictions, and the input model is untouched', () => {
    const model = builtinCnn();
    const x = randn([3, 6, 6, 2], 2);
    const before = predict(model, x).dataSync().slice();
    const weights = snapshotWeights(model);
    const ours = convertToDropnorm(model);
    expect(predict(ours, x).dataSync()).toEqual(before);
    const back = convertToBuiltins(ours);
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
    const back = convertToBuiltins(model);
    const bn = back.layers[2];
    expect(bn.getClassName()).toBe('BatchNormalization');
    expect(bn.getWeights().length).toBe(4);
    expect(bn.getConfig().momentum).toBe(CUMULATIVE_FALLBACK_MOMENTUM);
    expect(predict(back, x).dataSync()).toEqual(predict(model, x).dataSync());
  });

  it('refuses to convert a channels-first BN to the built-in (tfjs#1106)', () => {
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
    expect(() => convertToBuiltins(model)).toThrow(
      /channel axis of BatchNorm 'cf_bn' to be the last axis.*tfjs#1106/,
    );
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
