/**
 * `npm run bench`: the pack's layers against the tfjs built-ins they replace, as one training step
 * and one forward pass of a fixed model, A/B interleaved (see experiments/lib/timing.ts), plus foldBatchNorm's
 * inference speedup. Writes BENCHMARKS.md (machine, backend, versions, table, targets) and
 * reports/bench.json.
 *
 * Models: an MLP 784-512-512-10 at batch 128 (cpu and wasm) and a small CNN at batch 32 (cpu only:
 * the wasm backend has no Conv2DBackpropFilter). Each pair shares initial weights.
 *
 * Targets (benchmarks, not tests): pack / built-in median training-step ratio ≤ 1.05 for every
 * dropout variant, ≤ 1.00 for BatchNorm; folded / unfolded predict latency ≤ 0.8.
 *
 * Flags: --backends cpu,wasm (default: both), --runs 20, --warmup 3, --quick (5 runs, 1 warm-up,
 * MLP only), --out BENCHMARKS.md, --json reports/bench.json.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import * as dn from 'tfjs-dropnorm';
import { pickBackend } from 'tfjs-dropnorm/node';
import { parseArgs } from '../experiments/lib/cli';
import { fmt, formatTable, markdownTable, toJson } from '../experiments/lib/report';
import { ABResult, interleaved } from '../experiments/lib/timing';

type LayerFactory = () => tf.layers.Layer;

/** A pack layer and the built-in it replaces, as they sit in the benchmark models. */
interface Pair {
  name: string;
  pack: LayerFactory;
  builtin: LayerFactory;
  target: number;
  /** For rank-2 activations, the layer needs a [batch, steps, channels] view. */
  sequence?: boolean;
  /** Runs in the CNN too (after each conv). */
  cnn: boolean;
}

const PAIRS: Pair[] = [
  {
    name: 'Dropout 0.5',
    pack: () => dn.layers.dropout({ rate: 0.5 }),
    builtin: () => tf.layers.dropout({ rate: 0.5 }),
    target: 1.05,
    cnn: true,
  },
  {
    name: 'SpatialDropout1D 0.3',
    pack: () => dn.layers.spatialDropout1d({ rate: 0.3 }),
    builtin: () => tf.layers.spatialDropout1d({ rate: 0.3 }),
    target: 1.05,
    sequence: true,
    cnn: false,
  },
  {
    name: 'GaussianDropout 0.3',
    pack: () => dn.layers.gaussianDropout({ rate: 0.3 }),
    builtin: () => tf.layers.gaussianDropout({ rate: 0.3 }),
    target: 1.05,
    cnn: true,
  },
  {
    name: 'AlphaDropout 0.1',
    pack: () => dn.layers.alphaDropout({ rate: 0.1 }),
    builtin: () => tf.layers.alphaDropout({ rate: 0.1 }),
    target: 1.05,
    cnn: true,
  },
  {
    name: 'BatchNorm',
    pack: () => dn.layers.batchNorm(),
    builtin: () => tf.layers.batchNormalization(),
    target: 1.0,
    cnn: true,
  },
];

function seeded(seed: number) {
  return tf.initializers.glorotUniform({ seed });
}

/** MLP 784-512-512-10 with `layer` after each hidden Dense. */
function mlp(layer: LayerFactory | null, sequence = false): tf.LayersModel {
  const input = tf.input({ shape: [784] });
  let h: tf.SymbolicTensor = input;
  for (const [i, units] of [512, 512].entries()) {
    h = tf.layers.dense({ units, kernelInitializer: seeded(i + 1) }).apply(h) as tf.SymbolicTensor;
    if (layer) {
      if (sequence)
        h = tf.layers.reshape({ targetShape: [16, units / 16] }).apply(h) as tf.SymbolicTensor;
      h = layer().apply(h) as tf.SymbolicTensor;
      if (sequence) h = tf.layers.flatten().apply(h) as tf.SymbolicTensor;
    }
    h = tf.layers.activation({ activation: 'relu' }).apply(h) as tf.SymbolicTensor;
  }
  const out = tf.layers
    .dense({ units: 10, activation: 'softmax', kernelInitializer: seeded(9) })
    .apply(h) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  model.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
  return model;
}

/** Small CNN on 28×28×1: conv16 → layer → relu → pool → conv32 → layer → relu → pool → dense 10. */
function cnn(layer: LayerFactory | null): tf.LayersModel {
  const layers: tf.layers.Layer[] = [];
  for (const [i, filters] of [16, 32].entries()) {
    layers.push(
      tf.layers.conv2d({
        filters,
        kernelSize: 3,
        padding: 'same',
        kernelInitializer: seeded(20 + i),
        ...(i === 0 ? { inputShape: [28, 28, 1] } : {}),
      }),
    );
    if (layer) layers.push(layer());
    layers.push(
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
    );
  }
  layers.push(
    tf.layers.flatten(),
    tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: seeded(29) }),
  );
  const model = tf.sequential({ layers });
  model.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
  return model;
}

interface Measurement {
  backend: string;
  model: string;
  pair: string;
  kind: 'train step' | 'forward' | 'fold predict';
  result: ABResult;
  target: number | null;
}

async function measurePair(
  backend: string,
  modelName: string,
  make: (l: LayerFactory | null) => tf.LayersModel,
  pair: Pair,
  batch: { x: tf.Tensor; y: tf.Tensor },
  opts: { runs: number; warmup: number },
): Promise<Measurement[]> {
  const a = make(pair.pack);
  const b = make(pair.builtin);
  b.setWeights(a.getWeights());
  const step = (m: tf.LayersModel) => () => m.trainOnBatch(batch.x, batch.y);
  const forward = (m: tf.LayersModel) => async () => {
    const y = m.predict(batch.x) as tf.Tensor;
    await y.data();
    y.dispose();
  };
  const train = await interleaved(step(a), step(b), opts);
  const fwd = await interleaved(forward(a), forward(b), opts);
  a.dispose();
  b.dispose();
  return [
    {
      backend,
      model: modelName,
      pair: pair.name,
      kind: 'train step',
      result: train,
      target: pair.target,
    },
    { backend, model: modelName, pair: pair.name, kind: 'forward', result: fwd, target: null },
  ];
}

async function measureFold(
  backend: string,
  modelName: string,
  model: tf.LayersModel,
  x: tf.Tensor,
  opts: { runs: number; warmup: number },
): Promise<Measurement> {
  // Non-trivial statistics, as after training.
  model.layers.forEach((l, i) => {
    if (l instanceof dn.BatchNorm) {
      l.setWeights(
        l
          .getWeights()
          .map((w, j) =>
            j === 3
              ? tf.randomUniform(w.shape, 0.5, 2, 'float32', i)
              : tf.randomNormal(w.shape, j === 0 ? 1 : 0, 0.3, 'float32', i + j),
          ),
      );
    }
  });
  const { model: folded } = dn.foldBatchNorm(model);
  const predict = (m: tf.LayersModel) => async () => {
    const y = m.predict(x) as tf.Tensor;
    await y.data();
    y.dispose();
  };
  const result = await interleaved(predict(folded), predict(model), opts);
  folded.dispose();
  return {
    backend,
    model: modelName,
    pair: 'foldBatchNorm (folded / unfolded)',
    kind: 'fold predict',
    result,
    target: 0.8,
  };
}

const NOTES_MARK =
  '<!-- notes: hand-written analysis below is kept when the file is regenerated -->';

/** The hand-written analysis section of an existing BENCHMARKS.md, kept across regenerations. */
function keptNotes(file: string): string {
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const at = old.indexOf(NOTES_MARK);
  return at >= 0 ? '\n' + old.slice(at) : `\n${NOTES_MARK}\n\n## Analysis\n\n(none yet)\n`;
}

function inputs(shape: number[], seed: number) {
  const x = tf.randomNormal(shape, 0, 1, 'float32', seed);
  const y = tf.oneHot(tf.randomUniform([shape[0]], 0, 10, 'int32', seed + 1), 10);
  return { x, y };
}

async function main(): Promise<void> {
  const args = parseArgs(
    {
      backends: 'cpu,wasm',
      runs: 20,
      warmup: 3,
      quick: false,
      out: 'BENCHMARKS.md',
      json: 'reports/bench.json',
    },
    process.argv.slice(2),
    {
      usage: 'npm run bench -- [--backends cpu,wasm] [--runs 20] [--warmup 3] [--quick]',
    },
  );
  const opts = args.quick ? { runs: 5, warmup: 1 } : { runs: args.runs, warmup: args.warmup };
  const all: Measurement[] = [];
  const t0 = Date.now();
  for (const backend of args.backends.split(',')) {
    await pickBackend({ backend });
    const mlpBatch = inputs([128, 784], 1);
    for (const pair of PAIRS) {
      console.error(`${backend} MLP ${pair.name}…`);
      all.push(
        ...(await measurePair(
          backend,
          'MLP 784-512-512-10, batch 128',
          (l) => mlp(l, pair.sequence),
          pair,
          mlpBatch,
          opts,
        )),
      );
    }
    const bnMlp = mlp(() => dn.layers.batchNorm());
    all.push(
      await measureFold(backend, 'MLP 784-512-512-10 + BN, batch 128', bnMlp, mlpBatch.x, opts),
    );
    bnMlp.dispose();
    // Conv nets train only on backends with Conv2DBackpropFilter (not wasm); inference runs anywhere.
    const cnnBatch = inputs([32, 28, 28, 1], 3);
    if (backend !== 'wasm' && !args.quick) {
      for (const pair of PAIRS.filter((p) => p.cnn)) {
        console.error(`${backend} CNN ${pair.name}…`);
        all.push(
          ...(await measurePair(backend, 'CNN conv16-conv32, batch 32', cnn, pair, cnnBatch, opts)),
        );
      }
    }
    const bnCnn = cnn(() => dn.layers.batchNorm());
    all.push(
      await measureFold(backend, 'CNN conv16-conv32 + BN, batch 32', bnCnn, cnnBatch.x, opts),
    );
    bnCnn.dispose();
    tf.dispose([mlpBatch.x, mlpBatch.y, cnnBatch.x, cnnBatch.y]);
  }
  const seconds = (Date.now() - t0) / 1000;

  const ms = (v: number) => fmt(v, 3);
  const header = [
    'backend',
    'model',
    'pair',
    'measured',
    'pack / folded ms (IQR)',
    'built-in / unfolded ms (IQR)',
    'ratio',
    'target',
    'met',
  ];
  const rows = all.map((m) => [
    m.backend,
    m.model,
    m.pair,
    m.kind,
    `${ms(m.result.a.median)} (${ms(m.result.a.q1)}–${ms(m.result.a.q3)})`,
    `${ms(m.result.b.median)} (${ms(m.result.b.q1)}–${ms(m.result.b.q3)})`,
    m.result.ratio.toFixed(3),
    m.target === null ? '–' : `≤ ${m.target.toFixed(2)}`,
    m.target === null ? '–' : m.result.ratio <= m.target ? 'yes' : 'NO',
  ]);
  console.log(formatTable(header, rows));
  const missed = all.filter((m) => m.target !== null && m.result.ratio > m.target);
  const cpu = os.cpus();
  const md = [
    '# Benchmarks',
    '',
    'Generated by `npm run bench`' +
      (args.quick ? ' `--quick`' : '') +
      '. Medians of interleaved A/B runs (A and B alternate, which goes first alternates too)',
    `after ${opts.warmup} warm-up run(s), ${opts.runs} measured runs each; IQR = interquartile range. Ratio = median(pack or folded) / median(built-in or unfolded).`,
    '',
    `- machine: ${cpu[0]?.model ?? 'unknown'} × ${cpu.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}`,
    `- Node ${process.version}, tfjs ${tf.version.tfjs}, backends: ${args.backends}`,
    `- date: ${new Date().toISOString().slice(0, 10)}, total time ${seconds.toFixed(0)} s`,
    '',
    markdownTable(header, rows),
    '',
    '## Targets',
    '',
    missed.length === 0
      ? 'Every target was met in this run.'
      : [
          'Missed in this run:',
          '',
          ...missed.map(
            (m) =>
              `- ${m.backend}, ${m.model}, ${m.pair} (${m.kind}): ratio ${m.result.ratio.toFixed(3)} > ${m.target!.toFixed(2)}`,
          ),
        ].join('\n'),
    '',
  ].join('\n');
  fs.writeFileSync(path.resolve(args.out), md + keptNotes(path.resolve(args.out)));
  fs.mkdirSync(path.dirname(path.resolve(args.json)), { recursive: true });
  fs.writeFileSync(path.resolve(args.json), toJson({ seconds, opts, measurements: all }));
  console.log(
    `\n${all.length} measurements, ${missed.length} missed targets, ${seconds.toFixed(0)} s → ${args.out}`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
