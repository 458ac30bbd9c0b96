/**
 * Exporting a trained model for plain tfjs: `exportForInference`.
 *
 * Training needs layers that inference does not: dropout is the identity at inference, and a
 * BatchNorm is then a fixed per-channel affine map, y = γ·(x − μ)/√(σ² + ε) + β, that folds into
 * the Dense or conv layer before it (the weight math of PyTorch's `fuse_linear_bn_weights`):
 *
 *   W' = W·γ/√(σ² + ε)        b' = (b − μ)·γ/√(σ² + ε) + β
 *
 * `exportForInference(model)` returns a new model (the input is untouched) and what it did:
 * `folded` (BatchNorms folded into their linear layer), `removed` (layers that are the identity at
 * inference, activations fused into the layer before them), `replaced` (DropConnectDense → Dense)
 * and `skipped`. The result predicts the same within float rounding with fewer layers and
 * parameters, and holds only tfjs built-in classes: it loads with `@tensorflow/tfjs` alone.
 *
 *   npm run example:fold-export
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { PACK_CLASS_NAMES, exportForInference, layers } from 'tfjs-dropnorm';
import { fileSystem, pickBackend } from 'tfjs-dropnorm/node';
import { loadMnist } from './mnist';

const QUICK = process.argv.includes('--quick'); // a smaller run, for the tests

async function main(): Promise<void> {
  await pickBackend();
  const { train, test } = loadMnist(QUICK ? 300 : 2000, 500);

  // Dense (no bias: BN's β replaces it) → BatchNorm → ReLU → dropout, twice, then DropConnect.
  const model = tf.sequential();
  model.add(tf.layers.flatten({ inputShape: [28, 28, 1], name: 'flatten' }));
  for (const [i, units] of [128, 64].entries()) {
    model.add(tf.layers.dense({ units, useBias: false, name: `dense${i + 1}` }));
    model.add(layers.batchNorm({ name: `bn${i + 1}` }));
    model.add(tf.layers.activation({ activation: 'relu', name: `relu${i + 1}` }));
    model.add(layers.dropout({ rate: 0.3, seed: i + 1, name: `dropout${i + 1}` }));
  }
  model.add(
    layers.dropConnectDense({ units: 10, activation: 'softmax', rate: 0.2, seed: 3, name: 'out' }),
  );
  model.compile({ optimizer: 'adam', loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  await model.fit(train.xs, train.ys, { epochs: QUICK ? 1 : 5, batchSize: 32, verbose: 0 });

  // One call: fold, remove, replace. The trained model stays as it was.
  const exported = exportForInference(model);
  const plain = exported.model;
  for (const f of exported.folded) console.log(`folded   ${f.batchNorm} into ${f.into}`);
  for (const r of exported.removed) {
    console.log(`removed  ${r.layer} (${r.className}): ${r.reason}`);
  }
  for (const r of exported.replaced) {
    console.log(`replaced ${r.layer} (${r.className}) by ${r.by.join(' → ')}: ${r.reason}`);
  }
  console.log(`skipped  ${exported.skipped.length} layers`);

  const layerCount = (m: tf.LayersModel) =>
    m.layers.filter((l) => l.getClassName() !== 'InputLayer').length;
  console.log(`layers ${layerCount(model)} → ${layerCount(plain)}`);
  console.log(`parameters ${model.countParams()} → ${plain.countParams()}`);

  // Same predictions: inference mode of the original vs the exported model.
  const before = model.predict(test.xs) as tf.Tensor;
  const after = plain.predict(test.xs) as tf.Tensor;
  const maxDiff = tf.max(tf.abs(tf.sub(before, after))).dataSync()[0];
  console.log(
    `max |original − exported| over ${test.xs.shape[0]} test digits: ${maxDiff.toExponential(1)}`,
  );
  const accuracy = (p: tf.Tensor) =>
    tf.mean(tf.cast(tf.equal(tf.argMax(p, 1), tf.argMax(test.ys, 1)), 'float32')).dataSync()[0];
  console.log(
    `test accuracy: original ${accuracy(before).toFixed(3)}, exported ${accuracy(after).toFixed(3)}`,
  );

  // Save with the crash-safe file:// handler (model.json written last), then read what a loader
  // sees: the class names in model.json are all tfjs's own.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exported-'));
  await plain.save(fileSystem(dir));
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const classes: string[] = json.modelTopology.config.layers.map(
    (l: { class_name: string }) => l.class_name,
  );
  const fromPack = classes.filter((c) => PACK_CLASS_NAMES.includes(c));
  console.log(
    `model.json classes: ${[...new Set(classes)].join(', ')} (from tfjs-dropnorm: ${fromPack.length})`,
  );
  const loaded = await tf.loadLayersModel(fileSystem(dir));
  const reloaded = loaded.predict(test.xs) as tf.Tensor;
  const same = tf.max(tf.abs(tf.sub(after, reloaded))).dataSync()[0] === 0;
  console.log(
    `saved to ${dir}: ${fs.readdirSync(dir).sort().join(', ')}; loaded back, same outputs: ${same}`,
  );
  fs.rmSync(dir, { recursive: true, force: true });
}

main();
