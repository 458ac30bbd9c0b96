/**
 * Gradient-flow diagnostics and gradient clipping in a deep MLP on MNIST digits.
 *
 * 1. `gradientNorms(model, x, y)` gives ‖∂L/∂W‖ of every layer on one batch (Glorot & Bengio 2010
 *    plot these per layer); `firstLastRatio` is first layer / last layer. In a 12-layer sigmoid
 *    net σ′ ≤ 1/4 shrinks the gradient at every layer: the ratio is tiny, the gradient vanishes.
 * 2. A 12-layer ReLU net initialized at 2.5× the He std has exploding activations and gradients;
 *    trained with plain SGD its loss blows up. `clipOptimizer(sgd, {globalClipNorm: 1})` rescales
 *    the gradients so their global norm is at most 1 before each step (Keras's `global_clipnorm`,
 *    Pascanu et al. 2013): the loss stays finite. The `GradientFlow` callback records the raw
 *    (unclipped) per-layer norms on a probe batch after every epoch.
 *
 *   npm run example:gradient-clipping
 */
import * as tf from '@tensorflow/tfjs';
import { clipOptimizer, firstLastRatio, GradientFlow, gradientNorms } from 'tfjs-dropnorm';
import { pickBackend } from 'tfjs-dropnorm/node';
import { loadMnist } from './mnist';

const QUICK = process.argv.includes('--quick'); // a smaller run, for the tests
const DEPTH = 12;

/** DEPTH Dense layers of 64 units; `gain` multiplies the std of the hidden kernels' init. */
function deepMlp(activation: 'sigmoid' | 'relu', gain = 1): tf.Sequential {
  const model = tf.sequential();
  model.add(tf.layers.flatten({ inputShape: [28, 28, 1] }));
  for (let i = 0; i < DEPTH - 1; i++) {
    const seed = 100 + i; // the same weights in both ReLU runs
    const kernelInitializer =
      activation === 'sigmoid'
        ? tf.initializers.glorotUniform({ seed })
        : tf.initializers.varianceScaling({ scale: 2 * gain * gain, mode: 'fanIn', seed });
    model.add(tf.layers.dense({ units: 64, activation, kernelInitializer }));
  }
  // Logits out, softmax in the loss: a saturated softmax would hide the huge gradients.
  model.add(
    tf.layers.dense({ units: 10, kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
  );
  return model;
}

const loss = (y: tf.Tensor, logits: tf.Tensor) => tf.losses.softmaxCrossEntropy(y, logits);

async function main(): Promise<void> {
  await pickBackend();
  const { train } = loadMnist(QUICK ? 300 : 2000, 0);
  const probe = { x: train.xs.slice(0, 64), y: train.ys.slice(0, 64) };

  console.log(`1. Per-layer gradient norms at initialization (${DEPTH} layers, first → last):`);
  for (const activation of ['sigmoid', 'relu'] as const) {
    const model = deepMlp(activation);
    const norms = gradientNorms(model, probe.x, probe.y, { loss });
    model.dispose();
    const kernels = norms.filter((n) => n.kernel !== null).map((n) => n.kernel!.toExponential(0));
    console.log(`  ${activation.padEnd(7)} ${kernels.join(' ')}`);
    console.log(`  ${''.padEnd(7)} first/last ratio ${firstLastRatio(norms).toExponential(1)}`);
  }

  console.log('\n2. ReLU at 2.5× the He std, SGD with momentum, without and with clipping:');
  for (const clip of [false, true]) {
    const model = deepMlp('relu', 2.5);
    const sgd = tf.train.momentum(0.01, 0.9);
    const optimizer = clip ? clipOptimizer(sgd, { globalClipNorm: 1 }) : sgd;
    model.compile({ optimizer, loss });
    const flow = new GradientFlow({ x: probe.x, y: probe.y, every: 1 });
    const history = await model.fit(train.xs, train.ys, {
      epochs: QUICK ? 2 : 5,
      batchSize: 32,
      verbose: 0,
      callbacks: [flow],
    });
    const losses = history.history.loss.map((l) => Number(l).toPrecision(3)).join(', ');
    const largest = flow.history.map((r) =>
      Math.max(...r.gradients.map((g) => g.total)).toExponential(1),
    );
    console.log(`  ${clip ? 'clipOptimizer(globalClipNorm 1)' : 'no clipping'}:`);
    console.log(`    loss per epoch: ${losses}`);
    console.log(`    largest raw layer-gradient norm per epoch: ${largest.join(', ')}`);
    model.dispose();
  }
}

main();
