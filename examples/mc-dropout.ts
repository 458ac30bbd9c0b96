/**
 * Monte-Carlo dropout: uncertainty from a model trained with dropout.
 *
 * Gal & Ghahramani (2016) read dropout as approximate Bayesian inference: keep dropout on at
 * prediction time, run T passes, and the spread of the passes measures how unsure the model is.
 * `mcPredict(model, x, {samples: T, seed})` does that with only the pack's dropout layers switched
 * on (BatchNorm and everything else stay in inference mode) and returns, per output,
 *
 *   mean = (1/T) Σ ŷ_t,   variance = (1/T) Σ (ŷ_t − mean)².
 *
 * The predictive entropy of the mean, H = −Σ_c p_c log p_c, is high where the passes disagree or
 * are all unsure. Below: it is higher on the test digits the model gets wrong.
 *
 *   npm run example:mc-dropout
 */
import * as tf from '@tensorflow/tfjs';
import { layers, mcPredict } from 'tfjs-dropnorm';
import { pickBackend } from 'tfjs-dropnorm/node';
import { loadMnist } from './mnist';

const QUICK = process.argv.includes('--quick'); // a smaller run, for the tests
const SAMPLES = 30;

/** Predictive entropy of each row of class probabilities, in nats. */
function entropy(probs: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(
    () => tf.neg(tf.sum(tf.mul(probs, tf.log(tf.add(probs, 1e-12))), 1)) as tf.Tensor1D,
  );
}

async function main(): Promise<void> {
  await pickBackend();
  const { train, test } = loadMnist(QUICK ? 1000 : 3000, 1000);

  const model = tf.sequential();
  model.add(tf.layers.flatten({ inputShape: [28, 28, 1] }));
  model.add(tf.layers.dense({ units: 128, activation: 'relu' }));
  model.add(layers.dropout({ rate: 0.5, seed: 1 }));
  model.add(tf.layers.dense({ units: 128, activation: 'relu' }));
  model.add(layers.dropout({ rate: 0.5, seed: 2 }));
  model.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  model.compile({ optimizer: 'adam', loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  await model.fit(train.xs, train.ys, { epochs: QUICK ? 3 : 10, batchSize: 64, verbose: 0 });

  const { mean, variance } = mcPredict(model, test.xs, { samples: SAMPLES, seed: 7 });
  const labels = tf.argMax(test.ys, 1);
  const predicted = tf.argMax(mean, 1);
  const correct = tf.equal(predicted, labels).dataSync();
  const h = entropy(mean as tf.Tensor2D).dataSync();
  // The variance of the predicted class's probability over the passes.
  const spread = tf.sum(tf.mul(variance, tf.oneHot(predicted, 10)), 1).dataSync();

  const meanOf = (keep: (i: number) => boolean) => {
    const picked = Array.from(h).filter((_, i) => keep(i));
    return { n: picked.length, h: picked.reduce((a, b) => a + b, 0) / Math.max(1, picked.length) };
  };
  const right = meanOf((i) => correct[i] === 1);
  const wrong = meanOf((i) => correct[i] === 0);
  console.log(`MC dropout, ${SAMPLES} passes over ${h.length} test digits:`);
  console.log(`  accuracy of the mean prediction: ${(right.n / h.length).toFixed(3)}`);
  console.log(`  mean predictive entropy, correct: ${right.h.toFixed(3)} nats (${right.n} digits)`);
  console.log(`  mean predictive entropy, wrong:   ${wrong.h.toFixed(3)} nats (${wrong.n} digits)`);

  const label = labels.dataSync();
  const guess = predicted.dataSync();
  const order = Array.from(h.keys()).sort((a, b) => h[b] - h[a]);
  console.log('the five most uncertain test digits:');
  for (const i of order.slice(0, 5)) {
    console.log(
      `  #${i}: label ${label[i]}, predicted ${guess[i]}, entropy ${h[i].toFixed(3)}, ` +
        `std of the predicted probability ${Math.sqrt(spread[i]).toFixed(3)}`,
    );
  }
}

main();
