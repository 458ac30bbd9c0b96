/**
 * The demo page: wires the controls to the pack. Train a configuration of the CNN (model.ts) on the
 * chosen backend with live loss curves; measure the variance shift and recalibrate; Monte-Carlo
 * dropout on held-out digits; fold, export, time and download. Every failure lands in the error box
 * (ui.showError), never in a blank page. `document.body.dataset.state` and `window.__demo` tell
 * __tests__/demo.test.ts where the page is and what it showed.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-webgpu';
import * as dn from 'tfjs-dropnorm';
import { Digits, PIXELS, loadDigits, toTensors } from './data';
import { CONFIGS, DemoConfig, buildModel, varianceShift } from './model';
import { byId, digitCanvas, downloadLink, drawChart, setStatus, showError, showTable } from './ui';

/** What the page did, for the test (and the curious, in the console). */
export interface DemoRecord {
  backend?: string;
  config?: string;
  steps: number;
  trainLoss: [number, number][];
  heldOutLoss: [number, number][];
  heldOutAccuracy?: number;
  shift?: { name: string; ratio: number; recalibrated?: number }[];
  mc?: { index: number; entropy: number; mutualInformation: number }[];
  export?: {
    before: string[];
    after: string[];
    kept: string[];
    latencyMs: [number, number];
    maxDifference: number;
  };
}
const record: DemoRecord = { steps: 0, trainLoss: [], heldOutLoss: [] };
(window as unknown as { __demo: DemoRecord }).__demo = record;

type State = 'loading' | 'ready' | 'training' | 'busy' | 'trained' | 'error';
function setState(state: State): void {
  document.body.dataset.state = state;
  const idle = state === 'ready' || state === 'trained' || state === 'error';
  byId<HTMLButtonElement>('train').disabled = !idle;
  byId<HTMLButtonElement>('stop').disabled = state !== 'training';
  const haveModel = idle && model !== null;
  byId<HTMLButtonElement>('recalibrate').disabled =
    !haveModel || !model?.layers.some((l) => l instanceof dn.BatchNorm);
  byId<HTMLButtonElement>('mc').disabled = !haveModel;
  byId<HTMLButtonElement>('export').disabled = !haveModel;
}

/** Batch of every inference pass (evaluation, variance shift, recalibration, MC): one shape. */
const EVAL_BATCH = 200;

let digits: Digits | null = null;
let model: tf.Sequential | null = null;
let heldOut: { xs: tf.Tensor4D; ys: tf.Tensor2D } | null = null;
let stopRequested = false;
let webglLost = false;
/** Canvases (HTML or Offscreen) whose context loss is already watched. */
const watched = new WeakSet<object>();

// The wasm binaries are copied next to the page by the build.
setWasmPaths('./');

/** Switches to `name`, or throws a message saying why the browser cannot. */
async function useBackend(name: string): Promise<void> {
  if (name === 'webgl' && webglLost) {
    throw new Error(
      'The WebGL context of this tab was lost: reload the page to use webgl again, or pick another backend.',
    );
  }
  if (name === 'webgpu' && !('gpu' in navigator)) {
    throw new Error(
      'This browser has no WebGPU (navigator.gpu is missing; Chrome 113+ or Edge 113+ have it): pick webgl, wasm or cpu.',
    );
  }
  let ok = false;
  let cause = '';
  try {
    ok = await tf.setBackend(name);
  } catch (e) {
    cause = ` (${(e as Error).message})`;
  }
  if (!ok) {
    throw new Error(
      `The ${name} backend could not start in this browser${cause}: pick another backend.`,
    );
  }
  await tf.ready();
  if (name === 'wasm') dn.registerWasmTrainingKernels();
  if (name === 'webgl') {
    // Shapes as uniforms: one compiled shader per op rather than per op and shape (the evaluation,
    // recalibration and MC batches have other shapes than the training batch).
    tf.env().set('WEBGL_USE_SHAPES_UNIFORMS', true);
    watchWebglContext();
  }
}

/** A lost WebGL context (GPU reset, too much GPU memory) stops training with a message. */
function watchWebglContext(): void {
  const gl = (tf.backend() as unknown as { gpgpu?: { gl?: WebGLRenderingContext } }).gpgpu?.gl;
  const canvas = gl?.canvas;
  if (!canvas || watched.has(canvas)) return;
  watched.add(canvas);
  canvas.addEventListener('webglcontextlost', (event) => {
    event.preventDefault();
    webglLost = true;
    stopRequested = true;
    showError(
      'The WebGL context was lost (the GPU was reset, or the tab used too much GPU memory). Training stopped: reload the page to use webgl again, or pick wasm or cpu and Train.',
    );
    setState('error');
  });
}

function readInteger(id: string, min: number, max: number): number {
  const input = byId<HTMLInputElement>(id);
  const value = Number(input.value);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(
      `${input.parentElement?.textContent?.trim() ?? id}: expected an integer in [${min}, ${max}], received ${JSON.stringify(input.value)}.`,
    );
  }
  return value;
}

/** A seeded order of the training digits (mulberry32), so two runs of a configuration match. */
function batchOrder(n: number, seed: number): Int32Array {
  let a = seed >>> 0;
  const random = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const order = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

async function heldOutLoss(): Promise<[number, number]> {
  const [loss, accuracy] = model!.evaluate(heldOut!.xs, heldOut!.ys, {
    batchSize: EVAL_BATCH,
  }) as tf.Scalar[];
  const values = [(await loss.data())[0], (await accuracy.data())[0]] as [number, number];
  tf.dispose([loss, accuracy]);
  return values;
}

function dispose(): void {
  model?.dispose();
  model = null;
  tf.dispose(heldOut ? [heldOut.xs, heldOut.ys] : []);
  heldOut = null;
  for (const id of ['shift', 'mc-result', 'export-result']) byId(id).replaceChildren();
}

/** Steps per second, or seconds per step when slower (a software GPU compiling its shaders). */
function speed(steps: number, seconds: number): string {
  return steps >= seconds
    ? `${(steps / seconds).toFixed(1)} steps/s`
    : `${(seconds / steps).toFixed(1)} s/step`;
}

async function train(): Promise<void> {
  const backend = byId<HTMLSelectElement>('backend').value;
  const config = CONFIGS.find(
    (c) => c.id === byId<HTMLSelectElement>('config').value,
  ) as DemoConfig;
  const steps = readInteger('steps', 1, 5000);
  const batch = readInteger('batch', 2, 512);
  showError(null);
  setState('training');
  dispose();
  setStatus(`Starting ${backend}…`, 0);
  await useBackend(backend);
  Object.assign(record, {
    backend: tf.getBackend(),
    config: config.id,
    steps: 0,
    trainLoss: [],
    heldOutLoss: [],
  });
  model = buildModel(config, 1);
  heldOut = toTensors(digits!.heldOut);
  const train = toTensors(digits!.train);
  const order = batchOrder(digits!.train.n, 24);
  const evalEvery = Math.max(1, Math.round(steps / 20));
  stopRequested = false;
  const t0 = performance.now();
  try {
    for (let step = 1; step <= steps && !stopRequested; step++) {
      const start = ((step - 1) * batch) % (digits!.train.n - batch + 1);
      const [xs, ys] = tf.tidy(() => {
        const rows = tf.tensor1d(order.subarray(start, start + batch), 'int32');
        return [tf.gather(train.xs, rows), tf.gather(train.ys, rows)];
      });
      const [loss] = (await model.trainOnBatch(xs, ys)) as number[];
      tf.dispose([xs, ys]);
      if (!Number.isFinite(loss))
        throw new Error(
          `The training loss became ${loss} at step ${step}: try a smaller batch or another configuration.`,
        );
      record.trainLoss.push([step, loss]);
      record.steps = step;
      if (step % evalEvery === 0 || step === steps) {
        const [lossHeldOut, accuracy] = await heldOutLoss();
        record.heldOutLoss.push([step, lossHeldOut]);
        record.heldOutAccuracy = accuracy;
      }
      drawChart(
        [
          { label: 'train (batch)', color: '#4c78a8', points: record.trainLoss },
          { label: 'held-out', color: '#e45756', points: record.heldOutLoss },
        ],
        steps,
      );
      const seconds = (performance.now() - t0) / 1000;
      const accuracy =
        record.heldOutAccuracy === undefined
          ? ''
          : `, held-out accuracy ${(100 * record.heldOutAccuracy).toFixed(1)}%`;
      setStatus(
        `${config.label} on ${tf.getBackend()}: step ${step}/${steps}, loss ${loss.toFixed(3)}${accuracy}, ${speed(step, seconds)}`,
        step / steps,
      );
      await tf.nextFrame();
    }
  } finally {
    tf.dispose([train.xs, train.ys]);
  }
  await showShift();
}

async function showShift(recalibrated = false): Promise<void> {
  const rows = await varianceShift(model!, heldOut!.xs, EVAL_BATCH);
  if (rows.length === 0) {
    byId('shift').textContent = 'This configuration has no BatchNorm: nothing to shift.';
    record.shift = [];
    return;
  }
  if (recalibrated && record.shift) {
    rows.forEach((row, i) => (record.shift![i].recalibrated = row.ratio));
  } else {
    record.shift = rows.map(({ name, ratio }) => ({ name, ratio }));
  }
  showTable(
    'shift',
    [
      'BatchNorm',
      'dropout upstream',
      'Var(held-out input) / moving variance',
      'after recalibration',
    ],
    rows.map((row, i) => [
      row.name,
      row.afterDropout ? 'yes' : 'no',
      record.shift![i].ratio.toFixed(3),
      record.shift![i].recalibrated?.toFixed(3) ?? '',
    ]),
  );
}

async function recalibrate(): Promise<void> {
  setState('busy');
  const [lossBefore, accuracyBefore] = await heldOutLoss();
  const count = Math.min(1000, digits!.train.n);
  const { xs, ys } = toTensors(digits!.train, 0, count);
  try {
    await dn.recalibrateBatchNorm(model!, xs, { batchSize: EVAL_BATCH });
  } finally {
    tf.dispose([xs, ys]);
  }
  const [lossAfter, accuracyAfter] = await heldOutLoss();
  await showShift(true);
  const note = document.createElement('p');
  note.textContent = `Held-out loss ${lossBefore.toFixed(4)} → ${lossAfter.toFixed(4)}, accuracy ${(100 * accuracyBefore).toFixed(1)}% → ${(100 * accuracyAfter).toFixed(1)}% (statistics over ${count} training digits).`;
  byId('shift').append(note);
}

async function monteCarlo(): Promise<void> {
  if (!model!.layers.some((l) => l instanceof dn.StochasticLayer)) {
    byId('mc-result').textContent =
      'This configuration has no dropout layer: Monte-Carlo dropout needs one (pick a configuration with dropout and Train).';
    record.mc = [];
    return;
  }
  setState('busy');
  const count = Math.min(200, digits!.heldOut.n);
  const x = heldOut!.xs.slice(0, count);
  const result = await dn.mcPredictAsync(model!, x, {
    samples: 30,
    probabilities: 'categorical',
    seed: 7,
    batchSize: EVAL_BATCH,
  });
  const [entropy, information, predicted] = await Promise.all([
    result.predictiveEntropy!.data(),
    result.mutualInformation!.data(),
    tf.tidy(() => result.mean.argMax(-1)).data(),
  ]);
  tf.dispose([
    x,
    result.mean,
    result.variance,
    result.predictiveEntropy!,
    result.expectedEntropy!,
    result.mutualInformation!,
  ]);
  const order = Array.from(entropy.keys())
    .sort((a, b) => entropy[b] - entropy[a])
    .slice(0, 10);
  record.mc = order.map((index) => ({
    index,
    entropy: entropy[index],
    mutualInformation: information[index],
  }));
  const wrong = Array.from(predicted).filter((p, i) => p !== digits!.heldOut.labels[i]).length;
  const box = document.createElement('div');
  box.className = 'digits';
  for (const i of order) {
    const cell = document.createElement('div');
    cell.className = 'digit';
    cell.append(
      digitCanvas(digits!.heldOut.pixels.subarray(i * PIXELS, (i + 1) * PIXELS)),
      document.createElement('br'),
      `label ${digits!.heldOut.labels[i]}, guess ${predicted[i]}`,
      document.createElement('br'),
      `H ${entropy[i].toFixed(3)} · MI ${information[i].toFixed(3)}`,
    );
    box.append(cell);
  }
  const summary = document.createElement('p');
  summary.textContent = `${count} held-out digits, 30 passes: ${wrong} misclassified by the MC mean. The ten with the highest predictive entropy:`;
  byId('mc-result').replaceChildren(summary, box);
}

/** Median wall time of 5 predictions (after one warm-up), awaiting the data each time. */
async function latency(m: tf.LayersModel, x: tf.Tensor): Promise<number> {
  const times: number[] = [];
  for (let run = 0; run < 6; run++) {
    const t0 = performance.now();
    const y = m.predict(x) as tf.Tensor;
    await y.data();
    y.dispose();
    if (run > 0) times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[2];
}

async function exportModel(): Promise<void> {
  setState('busy');
  const exported = dn.exportForInference(model!);
  const x = heldOut!.xs.slice(0, 64);
  try {
    const before = model!.layers.map((l) => l.getClassName());
    const after = exported.model.layers.map((l) => l.getClassName());
    const latencies: [number, number] = [
      await latency(model!, x),
      await latency(exported.model, x),
    ];
    const difference = tf.tidy(() =>
      tf.max(
        tf.abs(tf.sub(model!.predict(x) as tf.Tensor, exported.model.predict(x) as tf.Tensor)),
      ),
    );
    const maxDifference = (await difference.data())[0];
    difference.dispose();
    record.export = {
      before,
      after,
      kept: exported.kept.map((k) => k.className),
      latencyMs: latencies,
      maxDifference,
    };
    let artifacts: tf.io.ModelArtifacts | undefined;
    await exported.model.save(
      tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const weightsName = 'dropnorm-demo.weights.bin';
    const modelJson = {
      modelTopology: artifacts!.modelTopology,
      format: 'layers-model',
      generatedBy: artifacts!.generatedBy,
      convertedBy: null,
      weightsManifest: [{ paths: [`./${weightsName}`], weights: artifacts!.weightSpecs }],
    };
    const weightData = artifacts!.weightData!;
    const weightParts = Array.isArray(weightData) ? weightData : [weightData];
    const result = byId('export-result');
    result.replaceChildren();
    const lists = document.createElement('div');
    lists.className = 'columns';
    lists.id = 'layer-lists';
    result.append(lists);
    const list = (title: string, names: string[]) => {
      const id = `layers-${title.split(' ')[0].toLowerCase()}`;
      const column = Object.assign(document.createElement('div'), { id });
      lists.append(column);
      showTable(
        id,
        [`${title} (${names.length} layers)`],
        names.map((n) => [n]),
      );
    };
    list('Trained', before);
    list('Exported', after);
    const timing = document.createElement('div');
    timing.id = 'latency';
    result.append(timing);
    showTable(
      'latency',
      ['model', 'layers', `ms per 64 digits on ${tf.getBackend()}`],
      [
        ['trained (pack layers)', before.length, latencies[0].toFixed(2)],
        [
          exported.kept.length ? 'exported (pack layers kept)' : 'exported (built-ins only)',
          after.length,
          latencies[1].toFixed(2),
        ],
      ],
      `max |Δ| of the predictions: ${maxDifference.toExponential(2)}; folded ${exported.folded.length} BN, removed ${exported.removed.length} layers`,
    );
    const downloads = document.createElement('p');
    downloads.className = 'downloads';
    downloads.append(
      downloadLink('dropnorm-demo.json', JSON.stringify(modelJson), 'application/json'),
      downloadLink(weightsName, new Blob(weightParts), 'application/octet-stream'),
      exported.kept.length
        ? ` (${[...new Set(exported.kept.map((k) => k.className))].join(', ')} has no built-in equivalent and is kept: import 'tfjs-dropnorm' before tf.loadLayersModel)`
        : ' (load with tf.loadLayersModel and plain tfjs, no pack needed)',
    );
    result.append(downloads);
  } finally {
    x.dispose();
    exported.model.dispose();
  }
}

/** Runs a button's action; any failure becomes the error box, and the buttons come back. */
function guard(action: () => Promise<void>): () => void {
  return () => {
    action()
      .then(() => setState(model ? 'trained' : 'ready'))
      .catch((e: unknown) => {
        showError(e instanceof Error ? e.message : String(e));
        setState('error');
      });
  };
}

async function start(): Promise<void> {
  setState('loading');
  const select = byId<HTMLSelectElement>('config');
  for (const config of CONFIGS) select.append(new Option(config.label, config.id));
  // ?backend=wasm&config=bn&steps=20&batch=32 preselects the controls.
  const params = new URLSearchParams(location.search);
  for (const id of ['backend', 'config', 'steps', 'batch']) {
    const value = params.get(id);
    if (value !== null) (byId(id) as HTMLInputElement).value = value;
  }
  if (!params.has('config')) select.value = 'dropout-before-bn';
  setStatus('Loading the MNIST digits…');
  digits = await loadDigits();
  setStatus(
    `${digits.train.n} training and ${digits.heldOut.n} held-out digits loaded. Pick a backend and a configuration, then Train.`,
  );
  byId('train').addEventListener('click', guard(train));
  byId('stop').addEventListener('click', () => (stopRequested = true));
  byId('recalibrate').addEventListener('click', guard(recalibrate));
  byId('mc').addEventListener('click', guard(monteCarlo));
  byId('export').addEventListener('click', guard(exportModel));
  setState('ready');
}

window.addEventListener('error', (event) => showError(`Unexpected error: ${event.message}`));
window.addEventListener('unhandledrejection', (event) =>
  showError(`Unexpected error: ${String(event.reason?.message ?? event.reason)}`),
);
start().catch((e: unknown) => {
  showError(e instanceof Error ? e.message : String(e));
  document.body.dataset.state = 'error';
});
