/**
 * Cross-layer equalization (Nagel, van Baalen, Blankevoort & Welling 2019, "Data-Free Quantization
 * through Weight Equalization and Bias Correction", Sec. 3). For two linear layers with a
 * positively homogeneous function f between them (f(c·z) = c·f(z) for c > 0, per channel: ReLU,
 * the identity, zero padding, pooling), y = W₂·f(W₁x + b₁) + b₂ is unchanged when output channel i
 * of the first layer is divided by sᵢ and input channel i of the second multiplied by sᵢ. Choosing
 * sᵢ = (1/r₂ᵢ)·√(r₁ᵢ·r₂ᵢ) = √(r₁ᵢ/r₂ᵢ) (Nagel eq. 11; rᵢ the largest |w| of channel i) gives both
 * layers the same per-channel ranges, so a per-tensor quantization grid fits each channel better.
 *
 * ReLU6 (a ReLU with maxValue, as in MobileNetV2) is not positively homogeneous:
 * min(z/s, 6) ≠ min(z, 6)/s whenever the clip is active, and a built-in ReLU has one maxValue for
 * all channels, so no per-channel rescaling through it keeps the function. Such pairs are not
 * equalized, and are listed with that reason: the result is exact in float, always. (Nagel et al.
 * replace ReLU6 by ReLU in MobileNetV2 before equalizing, which changes the model; we do not.)
 */
import * as tf from '@tensorflow/tfjs';
import { describeLayer } from '../errors';
import { GraphNode, ModelGraph, modelGraph } from './rewrite';

type Layer = tf.layers.Layer;

/** A pair of linear layers whose channels were equalized. */
export interface EqualizedPair {
  /** The layer whose output channels were divided by s. */
  from: string;
  /** The layer whose input channels were multiplied by s. */
  to: string;
  /** The positively homogeneous layers between them (ReLU, padding, pooling), in order. */
  through: string[];
  /** Number of channels rescaled. */
  channels: number;
  /**
   * How much of the per-tensor range the channels of `from`'s kernel use, mean over channels of
   * (channel's max |w|)/(kernel's max |w|), before and after equalization.
   */
  rangeUse: { before: number; after: number };
}

/** A linear layer whose output could not be equalized with the next layer, and why. */
export interface SkippedPair {
  /** The layer whose output channels would have been rescaled. */
  from: string;
  reason: string;
}

/** Result of {@link equalizeWeights}. */
export interface EqualizationResult {
  pairs: EqualizedPair[];
  skipped: SkippedPair[];
  /** Sweeps over all pairs until the scales settled (Nagel et al. iterate to convergence). */
  sweeps: number;
}

/** The layers whose kernel's last axis is the output channel and second-to-last the input. */
const LINEAR = new Set(['Dense', 'Conv1D', 'Conv2D', 'Conv3D']);

/** Layers f with f(D·x) = D·f(x) for a positive per-channel diagonal D (channel axis kept). */
const CHANNELWISE_HOMOGENEOUS = new Set([
  'ZeroPadding1D',
  'ZeroPadding2D',
  'ZeroPadding3D',
  'MaxPooling1D',
  'MaxPooling2D',
  'MaxPooling3D',
  'AveragePooling1D',
  'AveragePooling2D',
  'AveragePooling3D',
  'GlobalAveragePooling1D',
  'GlobalAveragePooling2D',
  'GlobalMaxPooling1D',
  'GlobalMaxPooling2D',
  'LeakyReLU',
]);

/** Activations with f(c·z) = c·f(z) for c > 0. */
const HOMOGENEOUS_ACTIVATIONS = new Set(['linear', 'relu']);

/** Where a kernel's channels lie: the axis of its output and of its input channels. */
interface KernelAxes {
  output: number;
  input: number;
}

/** The kernel axes of an equalizable layer, or why it is not one. */
function kernelAxes(layer: Layer, shape: readonly number[]): KernelAxes | string {
  const className = layer.getClassName();
  if (LINEAR.has(className)) return { output: shape.length - 1, input: shape.length - 2 };
  if (className === 'DepthwiseConv2D') {
    const multiplier = Number(layer.getConfig().depthMultiplier ?? 1);
    if (multiplier !== 1) return `${describeLayer(layer)} has depthMultiplier ${multiplier}`;
    // [kh, kw, channels, 1]: output channel c is input channel c.
    return { output: 2, input: 2 };
  }
  return `${describeLayer(layer)} is not Dense, Conv1D/2D/3D or DepthwiseConv2D`;
}

function activationOf(layer: Layer): string {
  return String(layer.getConfig().activation ?? 'linear');
}

/** Why the one-input layer `layer` between two linear layers breaks equalization, or null. */
function passProblem(layer: Layer): string | null {
  const className = layer.getClassName();
  if (className === 'ReLU') {
    const maxValue = layer.getConfig().maxValue;
    if (maxValue != null) {
      return `${describeLayer(layer)} clips at maxValue ${String(maxValue)} (ReLU6 is not positively homogeneous: min(z/s, ${String(maxValue)}) ≠ min(z, ${String(maxValue)})/s; rescaling would change the model)`;
    }
    return null;
  }
  if (className === 'Activation') {
    const a = activationOf(layer);
    return HOMOGENEOUS_ACTIVATIONS.has(a)
      ? null
      : `${describeLayer(layer)} applies '${a}', which is not positively homogeneous`;
  }
  if (CHANNELWISE_HOMOGENEOUS.has(className)) return null;
  return `${describeLayer(layer)} does not commute with a per-channel scale`;
}

/** A pair found in the graph: the weight indices of both layers and the kernel axes. */
interface Chain {
  from: Layer;
  to: Layer;
  through: string[];
  fromKernel: number;
  fromBias: number | null;
  fromAxis: number;
  toKernel: number;
  toAxis: number;
}

/**
 * The pairs of `graph` that can be equalized exactly, and the linear layers whose pair cannot
 * (with the reason). `weightIndex` maps a layer's weight variables to their index in the arrays.
 */
function findChains(
  graph: ModelGraph,
  shapes: readonly (readonly number[])[],
  weightIndex: ReadonlyMap<tf.LayerVariable, number>,
): { chains: Chain[]; skipped: SkippedPair[] } {
  const chains: Chain[] = [];
  const skipped: SkippedPair[] = [];
  const single = (node: GraphNode) => graph.nodesOf(node.layer).length === 1;
  for (const node of graph.nodes) {
    const a = node.layer;
    const className = a.getClassName();
    if (!LINEAR.has(className) && className !== 'DepthwiseConv2D') continue;
    if (!single(node)) {
      skipped.push({ from: a.name, reason: `${describeLayer(a)} is shared` });
      continue;
    }
    const kernel = weightIndex.get(a.weights[0]);
    if (kernel === undefined) continue;
    const axesA = kernelAxes(a, shapes[kernel]);
    if (typeof axesA === 'string') {
      skipped.push({ from: a.name, reason: axesA });
      continue;
    }
    if (!HOMOGENEOUS_ACTIVATIONS.has(activationOf(a))) {
      skipped.push({
        from: a.name,
        reason: `${describeLayer(a)} has the activation '${activationOf(a)}', which is not positively homogeneous`,
      });
      continue;
    }
    const through: string[] = [];
    let t = node.outputs[0];
    let problem: string | null = null;
    let b: GraphNode | null = null;
    for (;;) {
      const consumers = graph.consumers(t);
      if (graph.useCount(t) !== 1 || consumers.length !== 1) {
        problem = `the output of ${through.length ? `'${through[through.length - 1]}'` : describeLayer(a)} is read ${graph.useCount(t)} times (a residual Add, a branch or a model output)`;
        break;
      }
      const next = consumers[0];
      if (!single(next) || next.inputs.length !== 1) {
        problem = `${describeLayer(next.layer)} is shared or has several inputs`;
        break;
      }
      const nextClass = next.layer.getClassName();
      if (LINEAR.has(nextClass) || nextClass === 'DepthwiseConv2D') {
        b = next;
        break;
      }
      problem = passProblem(next.layer);
      if (problem) break;
      through.push(next.layer.name);
      t = next.outputs[0];
    }
    if (b == null) {
      skipped.push({ from: a.name, reason: problem ?? 'no linear layer follows' });
      continue;
    }
    const toKernel = weightIndex.get(b.layer.weights[0]);
    const axesB = toKernel === undefined ? 'no kernel' : kernelAxes(b.layer, shapes[toKernel]);
    if (typeof axesB === 'string' || toKernel === undefined) {
      skipped.push({ from: a.name, reason: String(axesB) });
      continue;
    }
    const bias = a.getConfig().useBias === false ? null : (weightIndex.get(a.weights[1]) ?? null);
    chains.push({
      from: a,
      to: b.layer,
      through,
      fromKernel: kernel,
      fromBias: bias,
      fromAxis: axesA.output,
      toKernel,
      toAxis: axesB.input,
    });
  }
  return { chains, skipped };
}

/** The channel of flat index `i` along `axis` of `shape`: ⌊i / stride⌋ mod size. */
function channelOf(shape: readonly number[], axis: number): (i: number) => number {
  const stride = shape.slice(axis + 1).reduce((p, d) => p * d, 1);
  const size = shape[axis];
  return (i) => Math.floor(i / stride) % size;
}

/** max |w| of each channel along `axis`. */
export function channelRanges(
  values: Float32Array,
  shape: readonly number[],
  axis: number,
): Float64Array {
  const r = new Float64Array(shape[axis]);
  const ch = channelOf(shape, axis);
  for (let i = 0; i < values.length; i++) {
    const c = ch(i);
    r[c] = Math.max(r[c], Math.abs(values[i]));
  }
  return r;
}

/** Multiplies channel c of `values` along `axis` by `factor[c]`, in place. */
function scaleChannels(
  values: Float32Array,
  shape: readonly number[],
  axis: number,
  factor: ArrayLike<number>,
): void {
  const ch = channelOf(shape, axis);
  for (let i = 0; i < values.length; i++) values[i] *= factor[ch(i)];
}

function rangeUse(r: Float64Array): number {
  let max = 0;
  let sum = 0;
  for (const v of r) {
    max = Math.max(max, v);
    sum += v;
  }
  return max === 0 ? 1 : sum / r.length / max;
}

/**
 * Equalizes, in place, the weights of every exactly equalizable pair of `model`'s top-level layers
 * (Nagel et al. 2019, Sec. 3): `values[k]` holds `model.weights[k]`. Sweeps over the pairs until
 * no scale moves by more than 0.1% (at most `maxSweeps`). The model itself is not modified.
 */
export function equalizeWeights(
  model: tf.LayersModel,
  values: Float32Array[],
  maxSweeps = 20,
): EqualizationResult {
  const shapes = model.weights.map((w) => w.shape as number[]);
  const weightIndex = new Map(model.weights.map((w, k) => [w, k] as const));
  const { chains, skipped } = findChains(modelGraph(model), shapes, weightIndex);
  const before = chains.map((c) =>
    rangeUse(channelRanges(values[c.fromKernel], shapes[c.fromKernel], c.fromAxis)),
  );
  let sweeps = 0;
  for (; sweeps < maxSweeps && chains.length > 0;) {
    sweeps++;
    let moved = 0;
    for (const c of chains) {
      const r1 = channelRanges(values[c.fromKernel], shapes[c.fromKernel], c.fromAxis);
      const r2 = channelRanges(values[c.toKernel], shapes[c.toKernel], c.toAxis);
      const s = new Float64Array(r1.length);
      for (let i = 0; i < s.length; i++) {
        // A dead channel (all zeros on either side) keeps its scale.
        s[i] = r1[i] > 0 && r2[i] > 0 ? Math.sqrt(r1[i] / r2[i]) : 1;
        moved = Math.max(moved, Math.abs(Math.log(s[i])));
      }
      const inverse = s.map((v) => 1 / v);
      scaleChannels(values[c.fromKernel], shapes[c.fromKernel], c.fromAxis, inverse);
      if (c.fromBias !== null) scaleChannels(values[c.fromBias], shapes[c.fromBias], 0, inverse);
      scaleChannels(values[c.toKernel], shapes[c.toKernel], c.toAxis, s);
    }
    if (moved < 1e-3) break;
  }
  const pairs = chains.map((c, k) => ({
    from: c.from.name,
    to: c.to.name,
    through: c.through,
    channels: shapes[c.fromKernel][c.fromAxis],
    rangeUse: {
      before: before[k],
      after: rangeUse(channelRanges(values[c.fromKernel], shapes[c.fromKernel], c.fromAxis)),
    },
  }));
  return { pairs, skipped, sweeps };
}
