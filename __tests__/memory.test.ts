import * as tf from '@tensorflow/tfjs';
import { layers } from 'tfjs-dropnorm';

/**
 * Every layer of the pack in a small model: after a warm-up step (optimizer slots are created
 * lazily), 100 training steps leave tf.memory().numTensors and numBytes unchanged.
 */
type Case = [string, () => tf.layers.Layer, number[]];

const cases: Case[] = [
  ['BatchNorm', () => layers.batchNorm(), [8]],
  ['BatchNorm cumulative', () => layers.batchNorm({ momentum: null }), [8]],
  ['BatchNorm channels-first', () => layers.batchNorm({ axis: 1 }), [2, 4, 4]],
  ['Dropout', () => layers.dropout({ rate: 0.3, seed: 1 }), [8]],
  ['Dropout classic', () => layers.dropout({ rate: 0.3, mode: 'classic' }), [8]],
  ['SpatialDropout1D', () => layers.spatialDropout1d({ rate: 0.3 }), [4, 2]],
  ['SpatialDropout2D', () => layers.spatialDropout2d({ rate: 0.3 }), [4, 4, 2]],
  ['SpatialDropout3D', () => layers.spatialDropout3d({ rate: 0.3 }), [2, 2, 2, 2]],
  ['GaussianDropout', () => layers.gaussianDropout({ rate: 0.3 }), [8]],
  ['AlphaDropout', () => layers.alphaDropout({ rate: 0.1 }), [8]],
  ['DropConnectDense', () => layers.dropConnectDense({ units: 8, rate: 0.3 }), [8]],
  ['DropBlock2D', () => layers.dropBlock2d({ rate: 0.2, blockSize: 2 }), [4, 4, 2]],
  ['DropPath', () => layers.dropPath({ rate: 0.3 }), [8]],
];

describe('100 training steps leak nothing', () => {
  test.each(cases)('%s', async (_, make, shape) => {
    const model = tf.sequential({
      layers: [
        tf.layers.reshape({ targetShape: shape, inputShape: [shape.reduce((a, b) => a * b, 1)] }),
        make(),
        ...(shape.length > 1 ? [tf.layers.flatten()] : []),
        tf.layers.dense({ units: 2 }),
      ],
    });
    model.compile({ optimizer: tf.train.adam(1e-3), loss: 'meanSquaredError' });
    const x = tf.randomNormal([4, shape.reduce((a, b) => a * b, 1)], 0, 1, 'float32', 1);
    const y = tf.randomNormal([4, 2], 0, 1, 'float32', 2);
    await model.trainOnBatch(x, y);
    const before = tf.memory();
    for (let i = 0; i < 100; i++) await model.trainOnBatch(x, y);
    const after = tf.memory();
    expect(after.numTensors).toBe(before.numTensors);
    expect(after.numBytes).toBe(before.numBytes);
  });
});
