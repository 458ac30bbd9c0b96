/**
 * The browser smoke page: trains a small model with the pack's BatchNorm and Dropout on the cpu
 * backend, folds the BatchNorm, runs mcPredict and mcPredictAsync, and shows the numbers in a
 * table. `__tests__/browser.test.ts` bundles it with esbuild, opens it in headless Chromium and
 * reads `#result` (JSON).
 */
import * as tf from '@tensorflow/tfjs';
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
  return {
    backend: tf.getBackend(),
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
    ]);
    document.getElementById('result')!.textContent = JSON.stringify(r);
  })
  .catch((e: unknown) => {
    document.getElementById('result')!.textContent = JSON.stringify({ error: String(e) });
  });
