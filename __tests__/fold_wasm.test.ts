// Folded models on the wasm backend (inference only: wasm cannot train convs). The models are
// built and folded, then run on wasm against the unfolded model run on wasm.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { foldBatchNorm, layers as dn } from 'tfjs-dropnorm';
import { predict, randn, randomizeBatchNorms, relativeDiff } from './fold_helpers';

beforeAll(async () => {
  expect(await tf.setBackend('wasm')).toBe(true);
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

it('a folded CNN (channels-last, depthwise, fused activations) predicts the same on wasm', () => {
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 2], filters: 4, kernelSize: 3, useBias: false }),
      dn.batchNorm(),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same' }),
      tf.layers.batchNormalization(),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3 }),
      dn.batchNorm(),
    ],
  });
  randomizeBatchNorms(model, 71);
  const x = randn([2, 8, 8, 2], 72);
  const reference = predict(model, x);
  for (const fuseActivations of [false, true]) {
    const { model: folded, skipped } = foldBatchNorm(model, { fuseActivations });
    expect(skipped).toEqual([]);
    expect(tf.getBackend()).toBe('wasm');
    expect(relativeDiff(predict(folded, x), reference)).toBeLessThan(1e-4);
  }
});
