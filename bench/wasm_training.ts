/**
 * `npm run bench`, conv-net training on wasm with the pack's gradient kernels
 * (`registerWasmTrainingKernels`, registered by pickBackend):
 *
 * - the CNN train step on wasm against the cpu backend (target: ratio ≤ 0.05);
 * - the achieved GFLOP/s of the wasm train step (FLOPs counted from the layers: forward, filter
 *   gradient, input gradient except the first layer's), next to the wasm matmul throughput of the
 *   same run;
 * - per kernel, from `tf.profile` of train steps (each kernel's own wall time): the share of the
 *   step in the pack's kernels, and their time over the forward convolutions they differentiate
 *   (goal ≤ 2), for the bench CNN and for a CNN with a depthwise-separable block; then per layer,
 *   each pack kernel over the forward convolution of the same layer (matched by shapes).
 */
import { performance } from 'perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { WASM_TRAINING_KERNELS } from 'tfjs-dropnorm';
import { BackendName, pickBackend } from 'tfjs-dropnorm/node';
import { summarize, TimingSummary } from '../experiments/lib/timing';

/** A markdown table for bench.ts to render, and the targets it missed. */
export interface WasmTrainingReport {
  title: string;
  header: string[];
  rows: string[][];
  notes: string[];
  missed: string[];
  json: Record<string, unknown>;
}

interface Options {
  backends: string[];
  quick: boolean;
  runs: number;
  warmup: number;
  /** The bench's CNN (conv16-conv32 on 28×28×1), compiled. */
  makeCnn: () => tf.LayersModel;
}

const BATCH = 32;
const STEP_RATIO_TARGET = 0.05;
const KERNELS_OVER_FORWARD_GOAL = 2;

/** The kernels of the forward convolutions each pack kernel differentiates. */
const FORWARD_OF: Record<string, string[]> = {
  Conv2DBackpropFilter: ['Conv2D', 'FusedConv2D'],
  DepthwiseConv2dNativeBackpropFilter: ['DepthwiseConv2dNative', 'FusedDepthwiseConv2D'],
  DepthwiseConv2dNativeBackpropInput: ['DepthwiseConv2dNative', 'FusedDepthwiseConv2D'],
};

/** conv16 → ReLU → pool → depthwise 3×3 → ReLU → pointwise conv32 → ReLU → pool → dense 10. */
function depthwiseCnn(): tf.LayersModel {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [28, 28, 1],
        filters: 16,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: init(40),
      }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.depthwiseConv2d({
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        depthwiseInitializer: init(41),
      }),
      tf.layers.conv2d({
        filters: 32,
        kernelSize: 1,
        activation: 'relu',
        kernelInitializer: init(42),
      }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init(43) }),
    ],
  });
  model.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
  return model;
}

/**
 * Multiply-adds of one train step, from the layers: forward, the filter gradient (as many), the
 * input gradient (as many, except the first layer's, which backprop prunes).
 */
export function trainStepFlops(model: tf.LayersModel, batch: number): number {
  let flops = 0;
  let first = true;
  model.layers.forEach((layer) => {
    const out = layer.outputShape as number[];
    const kernel = layer.getWeights()[0]?.shape as number[] | undefined;
    let macs = 0;
    const className = layer.getClassName();
    if ((className === 'Conv2D' || className === 'DepthwiseConv2D') && kernel) {
      // [kh, kw, in, out] or [kh, kw, in, multiplier]: one multiply-add per tap and output channel.
      macs = batch * out[1] * out[2] * kernel[0] * kernel[1] * kernel[2] * kernel[3];
    } else if (className === 'Dense' && kernel) {
      macs = batch * kernel[0] * kernel[1];
    }
    if (macs === 0) return;
    flops += 2 * macs * (first ? 2 : 3);
    first = false;
  });
  return flops;
}

function batchFor(model: tf.LayersModel, seed: number): { x: tf.Tensor; y: tf.Tensor } {
  const shape = model.inputs[0].shape.slice(1) as number[];
  return tf.tidy(() => ({
    x: tf.randomNormal([BATCH, ...shape], 0, 1, 'float32', seed),
    y: tf.oneHot(tf.randomUniform([BATCH], 0, 10, 'int32', seed + 1), 10),
  }));
}

/** Median train-step time of a fresh model on `backend`. */
async function stepTime(
  backend: string,
  make: () => tf.LayersModel,
  runs: number,
  warmup: number,
): Promise<{ summary: TimingSummary; flops: number }> {
  await pickBackend({ backend: backend as BackendName, log: () => undefined });
  const model = make();
  const { x, y } = batchFor(model, 3);
  for (let i = 0; i < warmup; i++) await model.trainOnBatch(x, y);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await model.trainOnBatch(x, y);
    times.push(performance.now() - t0);
  }
  const flops = trainStepFlops(model, BATCH);
  tf.dispose([x, y]);
  model.dispose();
  return { summary: summarize(times), flops };
}

/** One kernel call of a train step, identified by its kernel and shapes. */
interface Call {
  name: string;
  inputShapes: number[][];
  outputShapes: number[][];
}

const callKey = (c: Call) =>
  `${c.name} ${JSON.stringify(c.inputShapes)} → ${JSON.stringify(c.outputShapes)}`;

/**
 * Median own time per kernel name, and per kernel call (name and shapes: one layer's kernel, summed
 * when layers repeat), over `steps` profiled train steps (tf.profile).
 */
async function kernelTimes(
  make: () => tf.LayersModel,
  steps: number,
): Promise<{ byName: Map<string, number>; byCall: Map<string, { call: Call; ms: number }> }> {
  await pickBackend({ backend: 'wasm', log: () => undefined });
  const model = make();
  const { x, y } = batchFor(model, 5);
  await model.trainOnBatch(x, y);
  const perStep: Map<string, number>[] = [];
  const calls = new Map<string, Call>();
  for (let i = 0; i < steps; i++) {
    const info = await tf.profile(() => model.trainOnBatch(x, y));
    const sums = new Map<string, number>();
    // Only kernels: tf.profile also lists customGrad ops (e.g. fusedConv2d__op), which contain some.
    for (const k of info.kernels.filter((k) => tf.getKernel(k.name, 'wasm') != null)) {
      const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : NaN;
      const call = {
        name: k.name,
        inputShapes: k.inputShapes as number[][],
        outputShapes: k.outputShapes as number[][],
      };
      const key = callKey(call);
      calls.set(key, call);
      for (const name of [k.name, key]) sums.set(name, (sums.get(name) ?? 0) + ms);
    }
    perStep.push(sums);
  }
  tf.dispose([x, y]);
  model.dispose();
  const median = (key: string) => summarize(perStep.map((m) => m.get(key) ?? 0)).median;
  const names = new Set([...calls.values()].map((c) => c.name));
  return {
    byName: new Map([...names].map((n) => [n, median(n)])),
    byCall: new Map([...calls].map(([key, call]) => [key, { call, ms: median(key) }])),
  };
}

const same = (a: number[] | undefined, b: number[] | undefined) =>
  a != null && b != null && a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * The input and filter shapes of the convolution a pack kernel call differentiates
 * (Conv2DBackpropFilter and DepthwiseConv2dNativeBackpropFilter: x in, filter out;
 * DepthwiseConv2dNativeBackpropInput: filter in, x out).
 */
function layerOf(call: Call): { x: number[]; filter: number[] } {
  return call.name === 'DepthwiseConv2dNativeBackpropInput'
    ? { x: call.outputShapes[0], filter: call.inputShapes[1] }
    : { x: call.inputShapes[0], filter: call.outputShapes[0] };
}

/** The forward convolution of the same layer: a forward kernel with the same x and filter shapes. */
function forwardOf(call: Call, calls: { call: Call; ms: number }[]) {
  const { x, filter } = layerOf(call);
  return calls.find(
    ({ call: f }) =>
      FORWARD_OF[call.name].includes(f.name) &&
      same(f.inputShapes[0], x) &&
      same(f.inputShapes[1], filter),
  );
}

const shape = (s: number[]) => s.join('×');

/** Median GFLOP/s of a square float32 matmul on wasm (XNNPACK's GEMM). */
async function matmulGflops(runs: number): Promise<number> {
  await pickBackend({ backend: 'wasm', log: () => undefined });
  const n = 512;
  const [a, b] = [
    tf.randomNormal([n, n], 0, 1, 'float32', 1),
    tf.randomNormal([n, n], 0, 1, 'float32', 2),
  ];
  const times: number[] = [];
  for (let i = 0; i < runs + 1; i++) {
    const t0 = performance.now();
    const c = tf.matMul(a, b);
    await c.data();
    if (i > 0) times.push(performance.now() - t0);
    c.dispose();
  }
  tf.dispose([a, b]);
  return (2 * n ** 3) / (summarize(times).median * 1e6);
}

const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

/** The rows of the section (every number measured in this run). */
export async function measureWasmTraining(options: Options): Promise<WasmTrainingReport | null> {
  if (!options.backends.includes('wasm')) return null;
  const wasmRuns = options.quick ? 3 : options.runs;
  const rows: string[][] = [];
  const missed: string[] = [];
  const json: Record<string, unknown> = {};

  console.error('wasm CNN train step (pack kernels)…');
  const wasm = await stepTime('wasm', options.makeCnn, wasmRuns, options.warmup);
  const gflops = wasm.flops / (wasm.summary.median * 1e6);
  const matmul = await matmulGflops(wasmRuns);
  json.wasmStep = wasm.summary;
  json.trainStepGflop = wasm.flops / 1e9;
  json.trainStepGflops = gflops;
  json.matmulGflops = matmul;
  rows.push([
    'CNN conv16-conv32, batch 32',
    'train step, wasm',
    `${ms(wasm.summary.median)} ms (${ms(wasm.summary.q1)}–${ms(wasm.summary.q3)})`,
    `${(wasm.flops / 1e9).toFixed(3)} GFLOP → ${gflops.toFixed(2)} GFLOP/s; wasm matmul 512³: ${matmul.toFixed(1)} GFLOP/s`,
    '–',
  ]);
  if (options.backends.includes('cpu')) {
    console.error('cpu CNN train step (reference)…');
    const cpuRuns = options.quick ? 1 : Math.min(options.runs, 5);
    const cpu = await stepTime('cpu', options.makeCnn, cpuRuns, 1);
    const ratio = wasm.summary.median / cpu.summary.median;
    json.cpuStep = cpu.summary;
    json.wasmOverCpu = ratio;
    rows.push([
      'CNN conv16-conv32, batch 32',
      'train step, wasm / cpu',
      `${ms(cpu.summary.median)} ms on cpu (${cpuRuns} runs)`,
      `ratio ${ratio.toFixed(4)} (${(1 / ratio).toFixed(0)}× faster)`,
      `≤ ${STEP_RATIO_TARGET} ${ratio <= STEP_RATIO_TARGET ? 'yes' : 'NO'}`,
    ]);
    if (ratio > STEP_RATIO_TARGET) {
      missed.push(`wasm / cpu CNN train step: ratio ${ratio.toFixed(4)} > ${STEP_RATIO_TARGET}`);
    }
  }

  const profiled: [string, () => tf.LayersModel][] = [
    ['CNN conv16-conv32, batch 32', options.makeCnn],
    ['CNN conv16 → depthwise 3×3 → pointwise conv32, batch 32', depthwiseCnn],
  ];
  const steps = options.quick ? 2 : Math.max(5, Math.round(options.runs / 2));
  for (const [name, make] of profiled) {
    console.error(`wasm kernel times: ${name}…`);
    const { byName: times, byCall } = await kernelTimes(make, steps);
    const total = [...times.values()].reduce((a, b) => a + b, 0);
    const packKernels = WASM_TRAINING_KERNELS.filter((k) => times.has(k));
    const pack = packKernels.reduce((a, k) => a + times.get(k)!, 0);
    const forwardNames = [...new Set(packKernels.flatMap((k) => FORWARD_OF[k]))];
    const forward = forwardNames.reduce((a, k) => a + (times.get(k) ?? 0), 0);
    const top = [...times.entries()].sort((a, b) => b[1] - a[1]).slice(0, 4);
    json[name] = Object.fromEntries(times);
    rows.push([
      name,
      'wasm kernel time per step',
      `pack kernels ${ms(pack)} of ${ms(total)} ms (${((100 * pack) / total).toFixed(0)}%): ` +
        packKernels.map((k) => `${k} ${ms(times.get(k)!)}`).join(', '),
      `forward ${forwardNames.filter((k) => times.has(k)).join(' + ')} ${ms(forward)} ms; ` +
        `top: ${top.map(([k, v]) => `${k} ${ms(v)}`).join(', ')}`,
      `pack / forward ${(pack / forward).toFixed(2)} ≤ ${KERNELS_OVER_FORWARD_GOAL} ` +
        (pack / forward <= KERNELS_OVER_FORWARD_GOAL ? 'yes' : 'NO'),
    ]);
    // Per layer: each pack kernel call against the forward convolution of the same layer.
    const calls = [...byCall.values()];
    const layers: Record<string, unknown>[] = [];
    for (const { call, ms: own } of calls.filter(({ call }) => packKernels.includes(call.name))) {
      const fwd = forwardOf(call, calls);
      const { x, filter } = layerOf(call);
      layers.push({
        kernel: call.name,
        x,
        filter,
        ms: own,
        forward: fwd?.call.name,
        forwardMs: fwd?.ms,
      });
      rows.push([
        name,
        `layer: ${call.name}, x ${shape(x)}, filter ${shape(filter)}`,
        `${ms(own)} ms`,
        fwd ? `forward ${fwd.call.name} ${ms(fwd.ms)} ms` : 'forward not found',
        fwd ? `${(own / fwd.ms).toFixed(2)}× its forward` : '–',
      ]);
    }
    json[`${name}, per layer`] = layers;
    if (pack / forward > KERNELS_OVER_FORWARD_GOAL) {
      missed.push(
        `${name}: pack kernels / forward convolutions ${(pack / forward).toFixed(2)} > ${KERNELS_OVER_FORWARD_GOAL}`,
      );
    }
  }
  return {
    title: '## Conv-net training on wasm (tfjs-dropnorm kernels)',
    header: ['model', 'measured', 'time', 'throughput / detail', 'target'],
    rows,
    notes: [
      'Kernel times are each kernel’s own wall time in `tf.profile` of train steps (median per kernel). ' +
        'GFLOP = 2 × multiply-adds of the convolutions and dense layers (forward, filter gradient, and input ' +
        'gradient except the first layer’s). wasm runs one thread.',
    ],
    missed,
    json,
  };
}
