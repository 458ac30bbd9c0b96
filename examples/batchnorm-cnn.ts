/**
 * BatchNorm in a small conv net on MNIST digits.
 *
 * The pattern of Ioffe & Szegedy (2015, §3.2) and of ResNets: each conv layer is followed by
 * BatchNorm *before* its activation, z = ReLU(BN(W∗u)). The conv has no bias (`useBias: false`):
 * BN subtracts the per-channel mean, which would cancel any bias, and its β takes the bias's role.
 *
 *   conv 3×3 (no bias) → BatchNorm → ReLU → max-pool, twice (8, 16 filters), then Dense → softmax
 *
 * `layers.batchNorm` keeps an unbiased running variance (m/(m−1)·σ²_B, as PyTorch), which
 * `predict` and `evaluate` use; `fit` uses the batch statistics.
 *
 *   npm run example:batchnorm-cnn
 */
import * as tf from '@tensorflow/tfjs';
import { layers } from 'tfjs-dropnorm';
import { pickBackend } from 'tfjs-dropnorm/node';
import { loadMnist } from './mnist';

const QUICK = process.argv.includes('--quick'); // a smaller run, for the tests
const TRAIN_DIGITS = QUICK ? 500 : 4000;
const EPOCHS = QUICK ? 1 : 4;

function convBlock(model: tf.Sequential, filters: number, inputShape?: number[]): void {
  model.add(
    tf.layers.conv2d({
      ...(inputShape ? { inputShape } : {}),
      filters,
      kernelSize: 3,
      padding: 'same',
      useBias: false, // BN's β replaces it
    }),
  );
  // momentum 0.9 (PyTorch's default): after a few hundred steps Keras's 0.99 would still remember
  // the initial moving statistics (mean 0, variance 1), and inference would use them.
  model.add(layers.batchNorm({ momentum: 0.9 }));
  model.add(tf.layers.activation({ activation: 'relu' }));
  model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
}

async function main(): Promise<void> {
  // A backend that can train conv nets: on wasm, pickBackend adds the gradient kernels
  // tfjs-backend-wasm 4.22 lacks (registerWasmTrainingKernels) and says so in its one line.
  await pickBackend({ training: true });
  const { train, test } = loadMnist(TRAIN_DIGITS, 1000);

  const model = tf.sequential();
  convBlock(model, 8, [28, 28, 1]);
  convBlock(model, 16);
  model.add(tf.layers.flatten());
  model.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  model.compile({
    optimizer: tf.train.adam(3e-3),
    loss: 'categoricalCrossentropy',
    metrics: ['accuracy'],
  });
  model.summary();

  await model.fit(train.xs, train.ys, {
    epochs: EPOCHS,
    batchSize: 32,
    validationData: [test.xs, test.ys],
    callbacks: {
      onEpochEnd: async (epoch, logs) =>
        console.log(
          `epoch ${epoch + 1}: loss ${logs?.loss.toFixed(3)}, test accuracy ${logs?.val_acc.toFixed(3)}`,
        ),
    },
  });

  // Inference uses the moving statistics: the test accuracy of the finished model.
  const [, accuracy] = model.evaluate(test.xs, test.ys) as tf.Scalar[];
  console.log(`test accuracy: ${accuracy.dataSync()[0].toFixed(3)} (${test.xs.shape[0]} digits)`);
  const bn = model.layers.find((l) => l.getClassName() === 'DropnormBatchNorm')!;
  const [, , , movingVariance] = bn.getWeights();
  console.log(
    `first BatchNorm's moving variance, channel 0: ${movingVariance.dataSync()[0].toFixed(4)}`,
  );
}

main();
