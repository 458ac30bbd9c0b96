/**
 * Folding BatchNorm for inference, and saving the result.
 *
 * At inference a BN is a fixed per-channel affine map, y = γ·(x − μ)/√(σ² + ε) + β, so it can be
 * folded into the Dense or conv layer before it (the weight math of PyTorch's
 * `fuse_linear_bn_weights`):
 *
 *   W' = W·γ/√(σ² + ε)        b' = (b − μ)·γ/√(σ² + ε) + β
 *
 * `foldBatchNorm` returns a new model without the BNs (the input model is untouched): the same
 * predictions within float rounding, fewer layers and parameters, and only tfjs built-in layers,
 * so it loads with plain `tf.loadLayersModel`, without this pack. Importing `tfjs-dropnorm/node`
 * gives plain `@tensorflow/tfjs` the `file://` handler to save it.
 *
 *   npm run example:fold-export
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { foldBatchNorm, layers } from 'tfjs-dropnorm';
import { pickBackend } from 'tfjs-dropnorm/node';
import { loadMnist } from './mnist';

const QUICK = process.argv.includes('--quick'); // a smaller run, for the tests

async function main(): Promise<void> {
  await pickBackend();
  const { train, test } = loadMnist(QUICK ? 300 : 2000, 500);

  // Dense (no bias) → BatchNorm → ReLU, twice: the pattern foldBatchNorm folds backward.
  const model = tf.sequential();
  model.add(tf.layers.flatten({ inputShape: [28, 28, 1] }));
  for (const units of [128, 64]) {
    model.add(tf.layers.dense({ units, useBias: false }));
    model.add(layers.batchNorm());
    model.add(tf.layers.activation({ activation: 'relu' }));
  }
  model.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  model.compile({ optimizer: 'adam', loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  await model.fit(train.xs, train.ys, { epochs: QUICK ? 1 : 5, batchSize: 32, verbose: 0 });

  const { model: folded, folded: done, skipped } = foldBatchNorm(model);
  console.log(`folded ${done.length} BatchNorm layers (${skipped.length} skipped):`);
  for (const f of done) console.log(`  ${f.batchNorm} → ${f.into} (${f.direction})`);

  const before = model.predict(test.xs) as tf.Tensor;
  const after = folded.predict(test.xs) as tf.Tensor;
  const maxDiff = tf.max(tf.abs(tf.sub(before, after))).dataSync()[0];
  console.log(
    `max |original − folded| over ${test.xs.shape[0]} test digits: ${maxDiff.toExponential(1)}`,
  );
  const layerCount = (m: tf.LayersModel) =>
    m.layers.filter((l) => l.getClassName() !== 'InputLayer').length;
  console.log(`layers ${layerCount(model)} → ${layerCount(folded)}`);
  console.log(`parameters ${model.countParams()} → ${folded.countParams()}`);
  console.log(
    `layer classes: ${[...new Set(folded.layers.map((l) => l.getClassName()))].join(', ')}`,
  );

  // Save and load it back; a program without tfjs-dropnorm loads it the same way.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'folded-'));
  await folded.save(`file://${dir}`);
  const loaded = await tf.loadLayersModel(`file://${dir}/model.json`);
  const reloaded = loaded.predict(test.xs) as tf.Tensor;
  const same = tf.max(tf.abs(tf.sub(after, reloaded))).dataSync()[0] === 0;
  console.log(
    `saved to ${dir}: ${fs.readdirSync(dir).join(', ')}; loaded back, same outputs: ${same}`,
  );
  fs.rmSync(dir, { recursive: true, force: true });
}

main();
