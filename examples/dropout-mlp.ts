/**
 * Dropout variants in an MLP on MNIST digits.
 *
 * The same 784-128-128-10 MLP is trained on a small training set without regularization, then with
 * a member of the dropout family at each hidden layer:
 *
 * - `layers.dropout`: inverted dropout (Srivastava et al. 2014), each unit zeroed with probability
 *   `rate` and the rest scaled by 1/(1 − rate) in training; the identity at inference;
 * - `layers.gaussianDropout`: multiplicative N(1, rate/(1 − rate)) noise, same mean and variance;
 * - `layers.dropConnectDense`: a Dense layer that drops weights instead of units (Wan et al. 2013).
 *
 * All of them take a `seed`, which gives a reproducible sequence of masks, a new one at every step.
 * With few training digits the unregularized net overfits; compare the train–test gaps.
 *
 *   npm run example:dropout-mlp
 */
import * as tf from '@tensorflow/tfjs';
import { layers } from 'tfjs-dropnorm';
import { pickBackend } from 'tfjs-dropnorm/node';
import { loadMnist } from './mnist';

const QUICK = process.argv.includes('--quick'); // a smaller run, for the tests
const TRAIN_DIGITS = QUICK ? 300 : 1000;
const EPOCHS = QUICK ? 3 : 12;
const RATE = 0.5;

type Variant = 'none' | 'dropout' | 'gaussianDropout' | 'dropConnect';

/** The MLP with `variant` as its regularizer. */
function buildModel(variant: Variant): tf.Sequential {
  const model = tf.sequential();
  model.add(tf.layers.flatten({ inputShape: [28, 28, 1] }));
  for (let i = 0; i < 2; i++) {
    const seed = 10 + i; // one seed per layer: two layers with one seed would drop the same units
    if (variant === 'dropConnect') {
      model.add(layers.dropConnectDense({ units: 128, activation: 'relu', rate: RATE, seed }));
      continue;
    }
    model.add(tf.layers.dense({ units: 128, activation: 'relu' }));
    if (variant === 'dropout') model.add(layers.dropout({ rate: RATE, seed }));
    if (variant === 'gaussianDropout') model.add(layers.gaussianDropout({ rate: RATE, seed }));
  }
  model.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  model.compile({
    optimizer: tf.train.adam(1e-3),
    loss: 'categoricalCrossentropy',
    metrics: ['accuracy'],
  });
  return model;
}

async function main(): Promise<void> {
  await pickBackend(); // wasm if installed, else cpu; prints which one
  const { train, test } = loadMnist(TRAIN_DIGITS, 1000);

  console.log(`Training on ${TRAIN_DIGITS} digits for ${EPOCHS} epochs, testing on 1000.\n`);
  console.log('variant            train acc  test acc  test loss');
  for (const variant of ['none', 'dropout', 'gaussianDropout', 'dropConnect'] as const) {
    const model = buildModel(variant);
    await model.fit(train.xs, train.ys, { epochs: EPOCHS, batchSize: 64, verbose: 0 });
    // evaluate() runs in inference mode: the dropout layers are the identity there.
    const onTrain = model.evaluate(train.xs, train.ys) as tf.Scalar[];
    const onTest = model.evaluate(test.xs, test.ys) as tf.Scalar[];
    const [trainAcc, testLoss, testAcc] = [onTrain[1], ...onTest].map((t) => t.dataSync()[0]);
    console.log(
      `${variant.padEnd(17)}  ${trainAcc.toFixed(3).padStart(9)}  ${testAcc.toFixed(3).padStart(8)}  ` +
        testLoss.toFixed(3).padStart(9),
    );
    tf.dispose([...onTrain, ...onTest]);
    model.dispose();
  }
}

main();
