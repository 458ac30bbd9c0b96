/**
 * The seeded pieces the experiments' MNIST nets share, and the one way they look inside a trained
 * net. A layer's initial weights are seeded by (run seed, layer index) through `mixSeed`, so every
 * configuration of a seed starts from the same kernels wherever the layer sits.
 */
import * as tf from '@tensorflow/tfjs';
import { mixSeed } from 'tfjs-dropnorm';
import { MNIST_CLASSES, MNIST_PIXELS } from './mnist';
import { SEED_PURPOSE } from './random';

/** He-normal kernels (for ReLU nets, He et al. 2015) of layer `k` of run `seed`. */
export function heNormalKernel(
  seed: number,
  k: number,
): ReturnType<typeof tf.initializers.heNormal> {
  return tf.initializers.heNormal({ seed: mixSeed(seed, SEED_PURPOSE.init, k) });
}

/**
 * The flat 784-pixel digits as a 28×28×1 image, average-pooled by `pool` (a smaller net's input)
 * when `pool` > 1.
 */
export function mnistImageInput(pool: number): tf.layers.Layer[] {
  return [
    tf.layers.reshape({ inputShape: [MNIST_PIXELS], targetShape: [28, 28, 1] }),
    ...(pool > 1 ? [tf.layers.averagePooling2d({ poolSize: pool })] : []),
  ];
}

/** The 10-way softmax classifier that ends a net, its Glorot-uniform kernel that of layer `k`. */
export function softmaxOutput(seed: number, k: number): tf.layers.Layer {
  return tf.layers.dense({
    units: MNIST_CLASSES,
    activation: 'softmax',
    kernelInitializer: tf.initializers.glorotUniform({ seed: mixSeed(seed, SEED_PURPOSE.init, k) }),
  });
}

/**
 * What each of `layers` receives when `model` predicts `x` in inference mode (in batches of
 * `batchSize`), in the order of `layers`. The tensors are new: call inside `tf.tidy`.
 */
export function inferenceInputs(
  model: tf.LayersModel,
  layers: readonly tf.layers.Layer[],
  x: tf.Tensor,
  batchSize: number,
): tf.Tensor[] {
  // A model over the same layers whose outputs are their inputs: predict runs it in inference mode.
  const probe = tf.model({
    inputs: model.inputs,
    outputs: layers.map((layer) => layer.input as tf.SymbolicTensor),
  });
  const out = probe.predict(x, { batchSize });
  return Array.isArray(out) ? out : [out];
}
