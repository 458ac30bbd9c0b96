/**
 * BatchNorm folding: train a small CNN (with the pack's BatchNorm) and an MLP (with the built-in
 * BatchNormalization) on MNIST, fold every BN into the layer before it with `foldBatchNorm`, and
 * compare the two models on the active backend: max abs output difference, parameter count,
 * model.json + weights size, and predict latency (median of interleaved runs).
 *
 *   npm run experiment:bn-folding -- [--quick] [--backend cpu|wasm] [--out reports/bn-folding]
 *
 * Training runs on the fastest backend that trains conv nets (`pickBackend({training: true})`:
 * wasm with the pack's conv-training gradient kernels, registered by `registerWasmTrainingKernels`);
 * the measurements run on the backend `pickBackend` chooses (wasm when installed, or `--backend`).
 */
import * as tf from '@tensorflow/tfjs';
import { foldBatchNorm, layers as dn, mixSeed } from 'tfjs-dropnorm';
import { useBackend, useConvTrainingBackend } from '../lib/backend';
import { parseArgs } from '../lib/cli';
import { mnistSplit, toTensors } from '../lib/mnist';
import { Progress } from '../lib/progress';
import { heNormalKernel } from '../lib/nets';
import { SEED_PURPOSE, withSeededMathRandom } from '../lib/random';
import { fmt, formatTable, markdownTable, writeMarkdown, writeResults } from '../lib/report';
import { interleaved } from '../lib/timing';

const DEFAULTS = {
  quick: false,
  backend: '',
  out: 'reports/bn-folding',
  seed: 1,
  runs: 41,
  trainPerClass: 200,
  epochs: 2,
  batch: 64,
};

function parseOptions(argv: readonly string[]): typeof DEFAULTS {
  const args = parseArgs(DEFAULTS, argv, {
    usage: 'npm run experiment:bn-folding -- [--quick] [--backend cpu|wasm]',
  });
  if (args.quick) {
    args.runs = Math.min(args.runs, 21);
    args.trainPerClass = Math.min(args.trainPerClass, 30);
    args.epochs = 1;
  }
  return args;
}

/** conv (no bias) → BN → ReLU, twice, then a Dense → BN → ReLU head: the ResNet-style pattern. */
function cnn(seed: number): tf.LayersModel {
  const init = (k: number) => heNormalKernel(seed, k);
  return tf.sequential({
    name: 'cnn',
    layers: [
      tf.layers.reshape({ inputShape: [784], targetShape: [28, 28, 1] }),
      tf.layers.conv2d({
        filters: 8,
        kernelSize: 3,
        padding: 'same',
        useBias: false,
        kernelInitializer: init(1),
      }),
      dn.batchNorm(),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({
        filters: 16,
        kernelSize: 3,
        padding: 'same',
        useBias: false,
        kernelInitializer: init(2),
      }),
      dn.batchNorm(),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 32, useBias: false, kernelInitializer: init(3) }),
      dn.batchNorm(),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init(4) }),
    ],
  });
}

/** Dense → BN → ReLU blocks with the built-in BatchNormalization. */
function mlp(seed: number): tf.LayersModel {
  const init = (k: number) => heNormalKernel(seed, k);
  const layers: tf.layers.Layer[] = [];
  [256, 128, 64].forEach((units, i) => {
    layers.push(
      tf.layers.dense({
        units,
        kernelInitializer: init(i),
        ...(i === 0 ? { inputShape: [784] } : {}),
      }),
      tf.layers.batchNormalization(),
      tf.layers.activation({ activation: 'relu' }),
    );
  });
  layers.push(tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init(9) }));
  return tf.sequential({ name: 'mlp', layers });
}

/** Bytes of model.json (topology + weights manifest) and of the weights, as `model.save` writes. */
async function savedSize(model: tf.LayersModel): Promise<{ json: number; weights: number }> {
  let sizes = { json: 0, weights: 0 };
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const json = JSON.stringify({
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
      });
      const data = artifacts.weightData;
      const weights = Array.isArray(data)
        ? data.reduce((s, b) => s + b.byteLength, 0)
        : (data?.byteLength ?? 0);
      sizes = { json: Buffer.byteLength(json), weights };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return sizes;
}

/** One predict of `x`, read back so the work is done. */
function predictOnce(model: tf.LayersModel, x: tf.Tensor): () => Promise<void> {
  return async () => {
    const y = model.predict(x) as tf.Tensor;
    await y.data();
    y.dispose();
  };
}

interface Row {
  model: string;
  variant: string;
  batchNorms: number;
  folded: number;
  fusedActivations: number;
  layers: [number, number];
  heldOutAccuracy: number;
  maxAbsDiff: number;
  maxAbsOutput: number;
  params: [number, number];
  jsonBytes: [number, number];
  weightBytes: [number, number];
  latencyMs: [number, number];
  latencyRatio: number;
  batch: number;
}

async function main(): Promise<void> {
  const args = parseOptions(process.argv.slice(2));
  const training = await useConvTrainingBackend('', (line) => console.error(`${line} (training)`));
  const { train, heldOut } = mnistSplit({
    trainPerClass: args.trainPerClass,
    heldOutPerClass: 50,
    seed: args.seed,
  });
  const trainT = toTensors(train);
  const testT = toTensors(heldOut);
  const stepsPerModel = Math.ceil(train.n / 32) * args.epochs;
  const progress = new Progress(2 * stepsPerModel + 8, { label: 'bn-folding' });

  const trained: tf.LayersModel[] = [];
  for (const make of [cnn, mlp]) {
    const model = make(args.seed);
    model.compile({
      optimizer: tf.train.adam(1e-3),
      loss: 'categoricalCrossentropy',
      metrics: ['acc'],
    });
    progress.boundary(`training the ${model.name} on ${training.name}`);
    await withSeededMathRandom(mixSeed(args.seed, SEED_PURPOSE.mathRandom), () =>
      model.fit(trainT.xs, trainT.ys, {
        epochs: args.epochs,
        batchSize: 32,
        verbose: 0,
        callbacks: { onBatchEnd: async () => progress.tick() },
      }),
    );
    trained.push(model);
  }

  const backend = await useBackend(args.backend);
  const rows: Row[] = [];
  for (const model of trained) {
    for (const fuseActivations of [false, true]) {
      const result = foldBatchNorm(model, { fuseActivations });
      const folded = result.model;
      const x = testT.xs;
      const [before, after] = [model.predict(x) as tf.Tensor, folded.predict(x) as tf.Tensor];
      const maxAbsDiff = tf.max(tf.abs(tf.sub(before, after))).dataSync()[0];
      const maxAbsOutput = tf.max(tf.abs(before)).dataSync()[0];
      const accuracy = tf
        .mean(tf.cast(tf.equal(tf.argMax(before, 1), tf.argMax(testT.ys, 1)), 'float32'))
        .dataSync()[0];
      tf.dispose([before, after]);
      const [s0, s1] = [await savedSize(model), await savedSize(folded)];
      for (const batch of [1, args.batch]) {
        progress.boundary(
          `latency of the ${model.name}, ${fuseActivations ? 'fused' : 'folded'}, batch ${batch}`,
        );
        const xb = tf.slice(x, 0, batch);
        const timing = await interleaved(predictOnce(folded, xb), predictOnce(model, xb), {
          runs: args.runs,
          minSampleMs: 25,
        });
        xb.dispose();
        progress.tick();
        rows.push({
          model: model.name,
          variant: fuseActivations ? 'folded + fused activations' : 'folded',
          batchNorms: result.folded.length + result.skipped.length,
          folded: result.folded.length,
          fusedActivations: result.fusedActivations.length,
          heldOutAccuracy: accuracy,
          maxAbsDiff,
          maxAbsOutput,
          layers: [model.layers.length, folded.layers.length - 1],
          params: [model.countParams(), folded.countParams()],
          jsonBytes: [s0.json, s1.json],
          weightBytes: [s0.weights, s1.weights],
          latencyMs: [timing.b.median, timing.a.median],
          latencyRatio: timing.pairedRatio,
          batch,
        });
      }
    }
  }

  const header = [
    'model',
    'transform',
    'BN folded',
    'layers',
    'max |Δ| (rel)',
    'params before → after',
    'model.json B',
    'weights B',
    `predict ms (${backend})`,
    'paired ratio',
  ];
  const table = rows.map((r) => [
    `${r.model} (batch ${r.batch})`,
    r.variant,
    `${r.folded}/${r.batchNorms}`,
    `${r.layers[0]} → ${r.layers[1]}`,
    `${fmt(r.maxAbsDiff)} (${fmt(r.maxAbsDiff / r.maxAbsOutput)})`,
    `${r.params[0]} → ${r.params[1]}`,
    `${r.jsonBytes[0]} → ${r.jsonBytes[1]}`,
    `${r.weightBytes[0]} → ${r.weightBytes[1]}`,
    `${fmt(r.latencyMs[0])} → ${fmt(r.latencyMs[1])}`,
    fmt(r.latencyRatio),
  ]);
  console.log(formatTable(header, table));
  const md = [
    `# BatchNorm folding (backend ${backend}, tfjs ${tf.version.tfjs})`,
    '',
    `Trained on ${train.n} MNIST digits for ${args.epochs} epoch(s) on ${training.name} (${training.reason}); measured on ${heldOut.n} held-out digits. ` +
      `Latency: median over ${args.runs} interleaved samples per model, each the mean of enough predict calls to last ~25 ms; ratio = median of the per-pair ratios folded/original.`,
    '',
    markdownTable(header, table),
    '',
  ].join('\n');
  progress.done();
  writeMarkdown(args.out, md);
  writeResults(args.out, { backend, tfjs: tf.version.tfjs, args, rows });
  console.log(`\nreport: ${args.out}/report.md`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
