/**
 * Monte-Carlo dropout: uncertainty from a model trained with dropout.
 *
 * Gal & Ghahramani (2016) read dropout as approximate Bayesian inference: keep dropout on at
 * prediction time, run T passes ŷ_1 … ŷ_T, and their spread measures how unsure the model is.
 * `mcPredict` / `mcPredictAsync` do that with only the dropout layers drawing noise (BatchNorm and
 * everything else stay in inference mode) and, for a softmax output
 * (`probabilities: 'categorical'`), split the uncertainty in nats:
 *
 *   predictive entropy  H[ȳ],  ȳ = (1/T) Σ ŷ_t         total: the mean prediction is unsure
 *   expected entropy    (1/T) Σ H[ŷ_t]                 aleatoric: each pass is unsure
 *   mutual information  H[ȳ] − (1/T) Σ H[ŷ_t] ≥ 0      epistemic: the passes disagree (BALD)
 *
 * Below: all three are higher on the test digits the model gets wrong, and the digits with the
 * highest mutual information are the ones an active learner (BALD, Gal et al. 2017) would label
 * first.
 *
 *   npm run example:mc-dropout
 */
import * as tf from '@tensorflow/tfjs';
import { layers, mcPredictAsync } from 'tfjs-dropnorm';
import { pickBackend } from 'tfjs-dropnorm/node';
import { loadMnist } from './mnist';

const QUICK = process.argv.includes('--quick'); // a smaller run, for the tests
const SAMPLES = 30;

async function main(): Promise<void> {
  await pickBackend();
  const { train, test } = loadMnist(QUICK ? 1500 : 3000, 1000);

  const model = tf.sequential();
  model.add(tf.layers.flatten({ inputShape: [28, 28, 1] }));
  model.add(tf.layers.dense({ units: 128, activation: 'relu' }));
  model.add(layers.dropout({ rate: 0.5, seed: 1 }));
  model.add(tf.layers.dense({ units: 128, activation: 'relu' }));
  model.add(layers.dropout({ rate: 0.5, seed: 2 }));
  model.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  model.compile({ optimizer: 'adam', loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  await model.fit(train.xs, train.ys, { epochs: QUICK ? 6 : 10, batchSize: 64, verbose: 0 });

  // The async form yields to the event loop between forward passes (of `batchSize` rows each),
  // so a server or a page stays responsive, and reports progress.
  const mc = await mcPredictAsync(model, test.xs, {
    samples: SAMPLES,
    seed: 7,
    batchSize: 250,
    probabilities: 'categorical',
    onProgress: ({ samplesDone, samples, passesDone, passes }) => {
      const sampleEnds = passesDone % (passes / samples) === 0;
      if (sampleEnds && samplesDone % 10 === 0) console.log(`  ${samplesDone}/${samples} samples`);
    },
  });
  const labels = tf.argMax(test.ys, 1).dataSync();
  const predicted = tf.argMax(mc.mean, 1).dataSync();
  const h = mc.predictiveEntropy!.dataSync();
  const aleatoric = mc.expectedEntropy!.dataSync();
  const mi = mc.mutualInformation!.dataSync();

  const right = Array.from(labels.keys()).filter((i) => predicted[i] === labels[i]);
  const wrong = Array.from(labels.keys()).filter((i) => predicted[i] !== labels[i]);
  const mean = (values: ArrayLike<number>, rows: number[]) =>
    (rows.reduce((sum, i) => sum + values[i], 0) / Math.max(1, rows.length)).toFixed(3);
  console.log(`MC dropout, ${SAMPLES} samples over ${labels.length} test digits:`);
  console.log(`  accuracy of the mean prediction: ${(right.length / labels.length).toFixed(3)}`);
  console.log(
    '  mean over digits (nats)    predictive entropy  expected entropy  mutual information',
  );
  for (const [name, rows] of [
    ['correct', right],
    ['wrong', wrong],
  ] as const) {
    const label = `${name} (${rows.length} digits)`.padEnd(26);
    const cells = [h, aleatoric, mi].map((v, k) => mean(v, rows).padStart([20, 18, 20][k]));
    console.log(`  ${label}${cells.join('')}`);
  }

  const order = Array.from(mi.keys()).sort((a, b) => mi[b] - mi[a]);
  console.log(
    'the five test digits with the highest mutual information (the passes disagree most):',
  );
  for (const i of order.slice(0, 5)) {
    console.log(
      `  #${i}: label ${labels[i]}, predicted ${predicted[i]}, mutual information ` +
        `${mi[i].toFixed(3)}, predictive entropy ${h[i].toFixed(3)}`,
    );
  }
}

main();
