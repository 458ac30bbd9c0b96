/**
 * The browser smoke page: trains a small model with the pack's BatchNorm and Dropout on the cpu
 * backend, folds the BatchNorm, runs mcPredict and mcPredictAsync, then trains a small CNN on the
 * wasm backend with the pack's gradient kernels, and shows the numbers in a table.
 * `__tests__/browser.test.ts` bundles it with esbuild, serves it (and the .wasm binaries) on
 * localhost, opens it in headless Chromium and reads `#result` (JSON).
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import * as dn from 'tfjs-dropnorm';

interface Result {
  backend: string;
  firstLoss: number;
  lastLoss: number;
  foldDiff: number;
  folded: number;
  layers: string[];
  foldedLayers: string[];
  mcVariance: number;
  /** max |mcPredictAsync − mcPredict| of the means (same seed): 0. */
  mcAsyncDiff: number;
  /** Timer callbacks that ran during mcPredictAsync (it yields between passes). */
  mcAsyncTicks: number;
  userAgent: string;
  wasm: WasmResult;
}

interface WasmResult {
  backend: string;
  added: string[];
  firstLoss: number;
  lastLoss: number;
  /** max |wasm − cpu| / max |cpu| of the conv2d and depthwise filter gradients. */
  gradientError: number;
}

/** ∂/∂filter of sum(conv2d) and sum(depthwiseConv2d) on the active backend, as plain arrays. */
function filterGradients(): number[] {
  return tf.tidy(() => {
    const x = tf.randomNormal([2, 7, 7, 3], 0, 1, 'float32', 21) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 3, 4], 0, 1, 'float32', 22) as tf.Tensor4D;
    const d = tf.randomNormal([3, 3, 3, 2], 0, 1, 'float32', 23) as tf.Tensor4D;
    const conv = tf.grad((f: tf.Tensor) => tf.sum(tf.conv2d(x, f as tf.Tensor4D, 2, 'same')))(w);
    const depthwise = tf.grad((f: tf.Tensor) =>
      tf.sum(tf.depthwiseConv2d(x, f as tf.Tensor4D, 1, 'valid')),
    )(d);
    return [...conv.dataSync(), ...depthwise.dataSync()];
  });
}

/** A small CNN (conv, the pack's BatchNorm and SpatialDropout2D, a depthwise block) on wasm. */
async function trainCnnOnWasm(): Promise<WasmResult> {
  const reference = filterGradients(); // on cpu
  setWasmPaths('./'); // the .wasm binaries are served next to the page
  await tf.setBackend('wasm');
  const { added } = dn.registerWasmTrainingKernels();
  const wasmGradients = filterGradients();
  const scale = Math.max(...reference.map(Math.abs));
  const gradientError =
    Math.max(...reference.map((r, i) => Math.abs(r - wasmGradients[i]))) / scale;
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [12, 12, 1],
        filters: 8,
        kernelSize: 3,
        useBias: false,
        kernelInitializer: init(1),
      }),
      dn.layers.batchNorm(),
      tf.layers.activation({ activation: 'relu' }),
      dn.layers.spatialDropout2d({ rate: 0.2, seed: 2 }),
      tf.layers.depthwiseConv2d({
        kernelSize: 3,
        depthMultiplier: 2,
        depthwiseInitializer: init(3),
      }),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 2, activation: 'softmax', kernelInitializer: init(4) }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  // Two classes: a bright square in the top-left or in the bottom-right corner.
  const [x, y] = tf.tidy(() => {
    const labels = tf.tensor1d(
      Array.from({ length: 32 }, (_, i) => i % 2),
      'int32',
    );
    const corner = tf.pad(tf.ones([1, 6, 6, 1]), [
      [0, 0],
      [0, 6],
      [0, 6],
      [0, 0],
    ]);
    const flipped = tf.reverse(corner, [1, 2]);
    const images = tf.where(
      tf.reshape(tf.cast(labels, 'bool'), [32, 1, 1, 1]),
      tf.tile(flipped, [32, 1, 1, 1]),
      tf.tile(corner, [32, 1, 1, 1]),
    );
    return [
      tf.add(images, tf.randomNormal([32, 12, 12, 1], 0, 0.3, 'float32', 5)),
      tf.oneHot(labels, 2),
    ];
  });
  const history = await model.fit(x, y, { epochs: 15, batchSize: 8, verbose: 0 });
  const losses = history.history.loss as number[];
  tf.dispose([x, y]);
  return {
    backend: tf.getBackend(),
    added,
    firstLoss: losses[0],
    lastLoss: losses[losses.length - 1],
    gradientError,
  };
}

async function run(): Promise<Result> {
  await tf.setBackend('cpu');
  const model = tf.sequential({
    layers: [
      tf.layers.dense({
        units: 16,
        inputShape: [4],
        useBias: false,
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      }),
      dn.layers.batchNorm({ momentum: 0.9 }),
      tf.layers.activation({ activation: 'relu' }),
      dn.layers.dropout({ rate: 0.2, seed: 2 }),
      tf.layers.dense({ units: 1, kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
  const x = tf.randomNormal([64, 4], 0, 1, 'float32', 4);
  const y = tf.sum(x, 1, true);
  const history = await model.fit(x, y, { epochs: 10, batchSize: 16, verbose: 0 });
  const losses = history.history.loss as number[];
  const { model: folded, folded: foldedList } = dn.foldBatchNorm(model);
  const foldDiff = tf.tidy(
    () =>
      tf
        .max(tf.abs(tf.sub(model.predict(x) as tf.Tensor, folded.predict(x) as tf.Tensor)))
        .dataSync()[0],
  );
  const mc = dn.mcPredict(model, x, { samples: 8, seed: 5 });
  const mcVariance = tf.tidy(() => tf.mean(mc.variance).dataSync()[0]);
  // The browser path of the async form: no setImmediate, it yields through a MessageChannel.
  let mcAsyncTicks = 0;
  const ticker = setInterval(() => mcAsyncTicks++, 1);
  const mcAsync = await dn.mcPredictAsync(model, x, { samples: 200, seed: 5, batchSize: 16 });
  clearInterval(ticker);
  const mcSync = dn.mcPredict(model, x, { samples: 200, seed: 5, batchSize: 16 });
  const mcAsyncDiff = tf.tidy(
    () => tf.max(tf.abs(tf.sub(mcAsync.mean, mcSync.mean))).dataSync()[0],
  );
  const backend = tf.getBackend();
  const wasm = await trainCnnOnWasm();
  return {
    backend,
    firstLoss: losses[0],
    lastLoss: losses[losses.length - 1],
    foldDiff,
    folded: foldedList.length,
    layers: model.layers.map((l) => l.getClassName()),
    foldedLayers: folded.layers.map((l) => l.getClassName()),
    mcVariance,
    mcAsyncDiff,
    mcAsyncTicks,
    userAgent: navigator.userAgent,
    wasm,
  };
}

function show(rows: Array<[string, string]>): void {
  const table = document.createElement('table');
  for (const [k, v] of rows) {
    const tr = table.insertRow();
    tr.insertCell().textContent = k;
    tr.insertCell().textContent = v;
  }
  document.body.appendChild(table);
}

run()
  .then((r) => {
    show([
      ['backend', r.backend],
      ['loss, epoch 1 → 10', `${r.firstLoss.toFixed(4)} → ${r.lastLoss.toFixed(4)}`],
      ['layers', r.layers.join(', ')],
      ['after foldBatchNorm', r.foldedLayers.join(', ')],
      ['max |folded − original|', r.foldDiff.toExponential(2)],
      ['mcPredict mean variance', r.mcVariance.toExponential(2)],
      ['max |mcPredictAsync − mcPredict|', String(r.mcAsyncDiff)],
      ['timer ticks during mcPredictAsync', String(r.mcAsyncTicks)],
      ['CNN on wasm: kernels added', r.wasm.added.join(', ')],
      [
        'CNN on wasm: loss, epoch 1 → 15',
        `${r.wasm.firstLoss.toFixed(4)} → ${r.wasm.lastLoss.toFixed(4)}`,
      ],
      ['filter gradients, wasm vs cpu (relative)', r.wasm.gradientError.toExponential(2)],
    ]);
    document.getElementById('result')!.textContent = JSON.stringify(r);
  })
  .catch((e: unknown) => {
    document.getElementById('result')!.textContent = JSON.stringify({ error: String(e) });
  });
