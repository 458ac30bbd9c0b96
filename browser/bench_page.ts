/**
 * The bench page (`npm run bench -- --browser`): one training step of a small model with a pack
 * layer against the same model with the tfjs built-in, A/B interleaved (experiments/lib/timing.ts),
 * on the backend named in the URL (`?backend=webgl|webgpu&runs=10&warmup=3`). Each step ends with
 * an awaited read of the loss, so a sample times the GPU work and not only its enqueueing.
 * These are software GPUs (SwiftShader): the ratios mean something, the absolute times do not.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import * as dn from 'tfjs-dropnorm';
import { ABResult, interleaved } from '../experiments/lib/timing';
import { publishReport } from './publish';

type LayerFactory = () => tf.layers.Layer;

/** A pack layer and the built-in it replaces. */
interface BenchPair {
  name: string;
  model: 'MLP' | 'CNN';
  pack: LayerFactory;
  builtin: LayerFactory;
}

/** The pairs timed (BatchNorm and the dropout layers tfjs also has). */
const PAIRS: BenchPair[] = [
  {
    name: 'BatchNorm',
    model: 'MLP',
    pack: () => dn.layers.batchNorm(),
    builtin: () => tf.layers.batchNormalization(),
  },
  {
    name: 'BatchNorm',
    model: 'CNN',
    pack: () => dn.layers.batchNorm(),
    builtin: () => tf.layers.batchNormalization(),
  },
  {
    name: 'Dropout 0.5',
    model: 'MLP',
    pack: () => dn.layers.dropout({ rate: 0.5 }),
    builtin: () => tf.layers.dropout({ rate: 0.5 }),
  },
  {
    name: 'GaussianDropout 0.3',
    model: 'MLP',
    pack: () => dn.layers.gaussianDropout({ rate: 0.3 }),
    builtin: () => tf.layers.gaussianDropout({ rate: 0.3 }),
  },
  {
    name: 'AlphaDropout 0.1',
    model: 'MLP',
    pack: () => dn.layers.alphaDropout({ rate: 0.1 }),
    builtin: () => tf.layers.alphaDropout({ rate: 0.1 }),
  },
];

/** Model descriptions, as the report names them. */
export const BENCH_MODELS = {
  MLP: 'MLP 256-256-[layer]-256-10, batch 64',
  CNN: 'CNN conv16-[layer]-conv16, 16×16×8, batch 16',
};

const init = (seed: number) => tf.initializers.glorotUniform({ seed });

function model(kind: 'MLP' | 'CNN', layer: tf.layers.Layer): tf.LayersModel {
  if (kind === 'MLP') {
    return tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [256], units: 256, kernelInitializer: init(1) }),
        layer,
        tf.layers.activation({ activation: 'relu' }),
        tf.layers.dense({ units: 256, activation: 'relu', kernelInitializer: init(2) }),
        tf.layers.dense({ units: 10, kernelInitializer: init(3) }),
      ],
    });
  }
  return tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [16, 16, 8],
        filters: 16,
        kernelSize: 3,
        padding: 'same',
        useBias: false,
        kernelInitializer: init(1),
      }),
      layer,
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.conv2d({
        filters: 16,
        kernelSize: 3,
        activation: 'relu',
        kernelInitializer: init(2),
      }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 10, kernelInitializer: init(3) }),
    ],
  });
}

/** An async training step of `m`: SGD on mean squared error, ending with a read of the loss. */
function stepper(m: tf.LayersModel, x: tf.Tensor, y: tf.Tensor): () => Promise<void> {
  const optimizer = tf.train.sgd(0.01);
  return async () => {
    const loss = optimizer.minimize(
      () => tf.losses.meanSquaredError(y, m.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
      true,
    )!;
    await loss.data();
    loss.dispose();
  };
}

/** One timed pair on this page's backend. */
export interface BenchRow {
  backend: string;
  model: string;
  pair: string;
  result: ABResult;
}

async function run(): Promise<{ rows: BenchRow[]; userAgent: string }> {
  const params = new URLSearchParams(location.search);
  const backend = params.get('backend') ?? 'webgl';
  const runs = Number(params.get('runs') ?? 10);
  const warmup = Number(params.get('warmup') ?? 3);
  if (!(await tf.setBackend(backend))) throw new Error(`backend ${backend} did not initialize`);
  const rows: BenchRow[] = [];
  for (const pair of PAIRS) {
    console.log(`[bench ${backend}] ${pair.model} ${pair.name}`);
    const shape = pair.model === 'MLP' ? [64, 256] : [16, 16, 16, 8];
    const x = tf.randomNormal(shape, 0, 1, 'float32', 1);
    const y = tf.randomNormal([shape[0], 10], 0, 1, 'float32', 2);
    const a = model(pair.model, pair.pack());
    const b = model(pair.model, pair.builtin());
    b.setWeights(a.getWeights());
    const result = await interleaved(stepper(a, x, y), stepper(b, x, y), { runs, warmup });
    rows.push({ backend, model: BENCH_MODELS[pair.model], pair: pair.name, result });
    a.dispose();
    b.dispose();
    tf.dispose([x, y]);
  }
  return { rows, userAgent: navigator.userAgent };
}

publishReport(run);
