/**
 * Inference-time BatchNorm folding for whole LayersModels (PyTorch's `fuse_conv_bn_eval` /
 * `fuse_linear_bn_eval` level; the weight math is {@link foldBatchNormWeights} in `ops/fold`).
 */
import * as tf from '@tensorflow/tfjs';
import { checkOptionKeys, describeLayer, optionKeys } from '../errors';
import {
  KernelLayout,
  batchNormAffine,
  foldAffineIntoKernel,
  foldAffineIntoNextKernel,
  inputChannels,
  outputChannels,
} from '../ops/fold';
import { wrappedLayers } from '../layers/util';
import {
  batchNormAxis,
  batchNormStatistics,
  checkModelStatistics,
  isBatchNormLayer,
} from './batch_norm_layers';
import {
  GraphNode,
  ModelGraph,
  Substitution,
  assertLayersModel,
  firstCalls,
  modelGraph,
  nestedModelSpec,
  rewriteModel,
} from './rewrite';

type Layer = tf.layers.Layer;
type ConfigDict = tf.serialization.ConfigDict;

/** A BatchNorm that was folded away. */
export interface FoldedBatchNorm {
  /** Name of the BatchNorm layer. */
  batchNorm: string;
  /** Name of the linear layer that absorbed it. */
  into: string;
  /** 'backward': into the preceding layer (the usual case); 'forward': into the next layer. */
  direction: 'backward' | 'forward';
}

/** A BatchNorm kept in the model, and why it could not be folded. */
export interface SkippedBatchNorm {
  batchNorm: string;
  reason: string;
}

/** An activation layer merged into the linear layer before it (option `fuseActivations`). */
export interface FusedActivation {
  /** Name of the removed Activation or ReLU layer. */
  activation: string;
  /** Name of the linear layer that now applies it. */
  into: string;
}

/** Options of {@link foldBatchNorm}. */
export interface FoldBatchNormOptions {
  /**
   * After folding, also merge each `Activation` layer, and each `ReLU` layer without maxValue (as
   * activation 'relu'), into the linear layer feeding it (directly or through folded BNs) when
   * that layer has a linear activation and no other consumer, e.g.
   * Conv2D → BN → Activation('relu') becomes one Conv2D with activation 'relu'. tfjs then runs
   * bias and activation in its fused kernels. Default false.
   */
  fuseActivations?: boolean;
}

// The keys of FoldBatchNormOptions: add a new option here too (tsc checks the two agree).
const FOLD_OPTIONS = optionKeys<FoldBatchNormOptions>({ fuseActivations: true });

/** Result of {@link foldBatchNorm}. */
export interface FoldBatchNormResult {
  /** The new model; the input model is untouched. */
  model: tf.LayersModel;
  folded: FoldedBatchNorm[];
  skipped: SkippedBatchNorm[];
  /** Activation and ReLU layers merged into linear layers (empty unless `fuseActivations`). */
  fusedActivations: FusedActivation[];
}

/** Kernel layout of each foldable tf.layers class. */
const LINEAR_LAYOUTS: Readonly<Record<string, KernelLayout>> = {
  Dense: 'dense',
  Conv1D: 'conv1d',
  Conv2D: 'conv2d',
  Conv3D: 'conv3d',
  DepthwiseConv2D: 'depthwiseConv2d',
  Conv2DTranspose: 'conv2dTranspose',
};
const LINEAR_NAMES = Object.keys(LINEAR_LAYOUTS).join(', ');

/** A linear layer's pending new state (kernel/bias after earlier folds). */
interface LinearEdit {
  layer: Layer;
  layout: KernelLayout;
  config: ConfigDict;
  kernel: tf.Tensor;
  bias: tf.Tensor | null;
  changed: boolean;
}

/** Channel axis of a linear layer's input or output tensor of rank `rank`. */
function linearChannelAxis(edit: LinearEdit, rank: number): number {
  if (edit.layout === 'dense') return rank - 1;
  return edit.config.dataFormat === 'channelsFirst' ? 1 : rank - 1;
}

/**
 * The activation identifier an activation layer amounts to: an `Activation` layer's own, 'relu'
 * for a `ReLU` layer without maxValue; null for anything else. A ReLU with maxValue 6 stays a
 * layer: tfjs's 'relu6' activation is min(6, relu(x)), which tf.layers' Conv2D does not run in its
 * fused kernel, and whose broadcast Minimum costs more on wasm than the ReLU layer's clipByValue
 * (an exported MobileNetV2 ran 0.52× the original's time with ReLU6 layers kept, 1.19× with them
 * fused; `npm run bench`).
 */
function fusableActivation(layer: Layer): string | null {
  const config = layer.getConfig();
  if (layer.getClassName() === 'Activation') {
    return typeof config.activation === 'string' ? config.activation : null;
  }
  if (layer.getClassName() === 'ReLU' && config.maxValue == null) return 'relu';
  return null;
}

function isLinearActivation(config: ConfigDict): boolean {
  return config.activation == null || config.activation === 'linear';
}

class Folder {
  private readonly edits = new Map<Layer, LinearEdit>();
  private readonly owned: tf.Tensor[] = [];
  readonly removed = new Set<Layer>();
  readonly folded: FoldedBatchNorm[] = [];
  readonly skipped: SkippedBatchNorm[] = [];
  readonly fused: FusedActivation[] = [];

  constructor(private readonly graph: ModelGraph) {}

  private edit(layer: Layer): LinearEdit {
    let edit = this.edits.get(layer);
    if (!edit) {
      const config = layer.getConfig();
      const weights = layer.getWeights();
      edit = {
        layer,
        layout: LINEAR_LAYOUTS[layer.getClassName()],
        config,
        kernel: weights[0],
        bias: config.useBias === false ? null : weights[1],
        changed: false,
      };
      this.edits.set(layer, edit);
    }
    return edit;
  }

  /** Why `node`'s layer cannot take part in a fold, or null when it can. */
  private linearProblem(node: GraphNode | null, role: string): string | null {
    if (node == null) return `its input is a model input (it is first in the model)`;
    const layer = node.layer;
    if (!(layer.getClassName() in LINEAR_LAYOUTS)) {
      return `the ${role} layer ${describeLayer(layer)} is not one of ${LINEAR_NAMES}`;
    }
    if (this.removed.has(layer)) return `the ${role} layer ${describeLayer(layer)} was removed`;
    const calls = this.graph.nodesOf(layer).length;
    if (calls !== 1)
      return `the ${role} layer ${describeLayer(layer)} is shared (called ${calls} times)`;
    return null;
  }

  private tryBackward(bn: GraphNode): string | null {
    const input = bn.inputs[0];
    const producer = this.graph.producer(input);
    const problem = this.linearProblem(producer, 'preceding');
    if (problem) return problem;
    const layer = producer!.layer;
    const edit = this.edit(layer);
    const uses = this.graph.useCount(input);
    if (uses !== 1) {
      return `the output of ${describeLayer(layer)} has ${uses} consumers (the BN must be the only one)`;
    }
    if (!isLinearActivation(edit.config)) {
      return `${describeLayer(layer)} has the non-linear activation '${String(edit.config.activation)}'`;
    }
    const rank = input.shape.length;
    const axis = batchNormAxis(bn.layer, rank);
    if (axis !== linearChannelAxis(edit, rank)) {
      return `the BN normalizes axis ${axis}, not the channel axis of ${describeLayer(layer)}`;
    }
    const stats = batchNormStatistics(bn.layer);
    if (stats.movingMean.size !== outputChannels(edit.kernel.shape, edit.layout)) {
      return `the BN's ${stats.movingMean.size} channels differ from the outputs of ${describeLayer(layer)}`;
    }
    this.commit(bn, layer, edit, stats, 'backward', (affine) =>
      foldAffineIntoKernel(edit.kernel, edit.bias, affine, edit.layout),
    );
    return null;
  }

  /** Applies one fold: the new kernel and bias replace the layer's, and the BN goes. */
  private commit(
    bn: GraphNode,
    layer: Layer,
    edit: LinearEdit,
    stats: ReturnType<typeof batchNormStatistics>,
    direction: FoldedBatchNorm['direction'],
    fold: (affine: ReturnType<typeof batchNormAffine>) => { kernel: tf.Tensor; bias: tf.Tensor },
  ): void {
    const affine = batchNormAffine(stats);
    const { kernel, bias } = fold(affine);
    tf.dispose([affine.scale, affine.shift]);
    this.owned.push(kernel, bias);
    edit.kernel = kernel;
    edit.bias = bias;
    edit.changed = true;
    this.removed.add(bn.layer);
    this.folded.push({ batchNorm: bn.layer.name, into: layer.name, direction });
  }

  private tryForward(bn: GraphNode): string | null {
    const output = bn.outputs[0];
    const consumers = this.graph.consumers(output);
    const uses = this.graph.useCount(output);
    if (uses !== 1 || consumers.length !== 1) {
      return `its output has ${uses} consumers (the next layer must be the only one)`;
    }
    const next = consumers[0];
    const problem = this.linearProblem(next, 'next');
    if (problem) return problem;
    const layer = next.layer;
    const edit = this.edit(layer);
    if (edit.layout === 'conv2dTranspose') {
      return `the next layer ${describeLayer(layer)} is a transposed convolution (border outputs get fewer taps)`;
    }
    if (edit.layout !== 'dense' && edit.config.padding !== 'valid') {
      return `the next layer ${describeLayer(layer)} has padding '${String(edit.config.padding)}': the BN shift does not fold exactly at zero-padded borders`;
    }
    const rank = output.shape.length;
    const axis = batchNormAxis(bn.layer, rank);
    if (axis !== linearChannelAxis(edit, rank)) {
      return `the BN normalizes axis ${axis}, not the input channel axis of ${describeLayer(layer)}`;
    }
    const stats = batchNormStatistics(bn.layer);
    if (stats.movingMean.size !== inputChannels(edit.kernel.shape, edit.layout)) {
      return `the BN's ${stats.movingMean.size} channels differ from the inputs of ${describeLayer(layer)}`;
    }
    const layout = edit.layout as Exclude<KernelLayout, 'conv2dTranspose'>;
    this.commit(bn, layer, edit, stats, 'forward', (affine) =>
      foldAffineIntoNextKernel(edit.kernel, edit.bias, affine, layout),
    );
    return null;
  }

  fold(bn: GraphNode): void {
    const calls = this.graph.nodesOf(bn.layer).length;
    if (calls !== 1) {
      this.skipped.push({
        batchNorm: bn.layer.name,
        reason: `the BN layer is shared (called ${calls} times)`,
      });
      return;
    }
    const backward = this.tryBackward(bn);
    if (backward === null) return;
    const forward = this.tryForward(bn);
    if (forward === null) return;
    this.skipped.push({
      batchNorm: bn.layer.name,
      reason: `cannot fold into the preceding layer: ${backward}; nor into the next: ${forward}`,
    });
  }

  /**
   * Merges an Activation layer into the linear layer feeding it, looking through folded BNs, when
   * every tensor on the way has no other consumer and the linear layer's activation is linear.
   */
  fuseActivation(act: GraphNode): void {
    const activation = fusableActivation(act.layer);
    if (this.graph.nodesOf(act.layer).length !== 1) return;
    if (activation === null || activation === 'linear') return;
    let t = act.inputs[0];
    for (;;) {
      if (this.graph.useCount(t) !== 1) return;
      const producer = this.graph.producer(t);
      if (producer == null) return;
      if (this.removed.has(producer.layer)) {
        t = producer.inputs[0];
        continue;
      }
      if (this.linearProblem(producer, 'preceding') !== null) return;
      const edit = this.edit(producer.layer);
      if (!isLinearActivation(edit.config)) return;
      edit.config = { ...edit.config, activation };
      edit.changed = true;
      this.removed.add(act.layer);
      this.fused.push({ activation: act.layer.name, into: producer.layer.name });
      return;
    }
  }

  substitutions(): Map<Layer, Substitution> {
    const subs = new Map<Layer, Substitution>();
    for (const layer of this.removed) subs.set(layer, { remove: true });
    for (const edit of this.edits.values()) {
      if (!edit.changed) continue; // looked at, never changed
      subs.set(edit.layer, {
        replace: {
          className: edit.layer.getClassName(),
          config: { ...edit.config, useBias: edit.bias !== null },
          weights: edit.bias ? [edit.kernel, edit.bias] : [edit.kernel],
        },
      });
    }
    return subs;
  }

  dispose(): void {
    tf.dispose(this.owned);
  }
}

/**
 * Folds every BatchNorm of `model` that can be folded into an adjacent linear layer, for inference.
 *
 * A BatchNorm (the pack's `BatchNorm` or the built-in `BatchNormalization`) at inference is the
 * per-channel affine map `y = s·x + t`, `s = γ/√(σ²+ε)`, `t = β − μ·s`. When it directly follows a
 * Dense, Conv1D, Conv2D, Conv3D, DepthwiseConv2D or Conv2DTranspose layer with a linear activation whose
 * output nothing else reads, it is folded into that layer (a bias is added where there was none):
 *
 *   W' = W·γ/√(σ²+ε),   b' = (b−μ)·γ/√(σ²+ε) + β        (per output channel)
 *
 * channels-last and channels-first (the conv's `dataFormat` must match the BN's axis). When that is
 * impossible (e.g. a ReLU in between) it is folded forward into the next layer if that layer is a
 * Dense, Conv1D, Conv2D, Conv3D or DepthwiseConv2D reading only the BN, with padding 'valid' for
 * convs:
 *
 *   W'' = W·s (per input channel),   b'' = b + Σ t·W
 *
 * Every other BN stays, listed in `skipped` with the reason. BNs are visited in topological order,
 * so folds compose. A built-in channels-first BN (which tfjs 4.22 evaluates along the wrong axis,
 * tfjs#1106) folds into the *correct* affine map. A model used as a layer (a nested model) is
 * folded on its own and swapped in; a BN cannot fold across its boundary. A BN inside a wrapper
 * layer (`tf.layers.timeDistributed`) is not folded and is listed in `skipped`.
 *
 * No value is read back from the backend (no `dataSync`): statistics are not checked here, so a BN
 * with non-finite statistics folds into non-finite weights, computing what the BN computes. Use
 * {@link foldBatchNormAsync} to have them checked (one awaited read).
 *
 * With `options.fuseActivations`, each `Activation` layer (and each `ReLU` layer without maxValue)
 * then merges into the linear layer feeding it (see {@link FoldBatchNormOptions}).
 *
 * @returns a new, uncompiled functional LayersModel (built with {@link rewriteModel}; the input model
 *   and its weights are untouched), and the lists `folded` and `skipped`. A model whose BNs all fold
 *   contains only built-in layers and loads with plain `tf.loadLayersModel`.
 * @throws DropnormValueError if `model` is not a LayersModel (or is disposed), an option is unknown,
 *   or a layer's class is not registered with tfjs (it cannot be re-created).
 */
export function foldBatchNorm(
  model: tf.LayersModel,
  options: FoldBatchNormOptions = {},
): FoldBatchNormResult {
  const owner = 'foldBatchNorm';
  assertLayersModel(owner, model);
  checkOptionKeys(owner, options, FOLD_OPTIONS);
  return foldModel(model, options);
}

/**
 * {@link foldBatchNorm} that first checks every BatchNorm's statistics (one awaited read of all of
 * them, no synchronous read): a BN with a non-finite moving mean, variance, γ or β, or with
 * σ²+ε ≤ 0, is an error here, where the synchronous form folds it into non-finite weights (which
 * compute the non-finite outputs the BN computes).
 *
 * @throws DropnormValueError as {@link foldBatchNorm}, and for broken statistics (named by layer and
 *   channel).
 */
export async function foldBatchNormAsync(
  model: tf.LayersModel,
  options: FoldBatchNormOptions = {},
): Promise<FoldBatchNormResult> {
  await checkModelStatistics('foldBatchNormAsync', model, options, FOLD_OPTIONS);
  return foldModel(model, options);
}

/** BNs inside wrapper layers (TimeDistributed, Bidirectional): not folded, with the reason. */
function wrappedBatchNorms(graph: ModelGraph): SkippedBatchNorm[] {
  const out: SkippedBatchNorm[] = [];
  for (const node of firstCalls(graph.nodes)) {
    const wrapper = node.layer;
    for (const inner of wrappedLayers(wrapper)) {
      if (!isBatchNormLayer(inner)) continue;
      out.push({
        batchNorm: `${wrapper.name}/${inner.name}`,
        reason: `inside the wrapper ${describeLayer(wrapper)}: foldBatchNorm folds only BNs called directly (exportForInference unwraps a TimeDistributed BN, which then folds)`,
      });
    }
  }
  return out;
}

function foldModel(model: tf.LayersModel, options: FoldBatchNormOptions): FoldBatchNormResult {
  const owner = 'foldBatchNorm';
  const graph = modelGraph(model);
  const bns = graph.nodes.filter((n) => isBatchNormLayer(n.layer));
  const folder = new Folder(graph);
  folder.skipped.push(...wrappedBatchNorms(graph));
  try {
    for (const bn of bns) folder.fold(bn);
    if (options.fuseActivations) {
      for (const node of graph.nodes) {
        if (fusableActivation(node.layer) !== null) folder.fuseActivation(node);
      }
    }
    const subs = folder.substitutions();
    const result = { folded: folder.folded, skipped: folder.skipped, fused: folder.fused };
    // A model used as a layer is folded on its own and swapped in (same name, new weights).
    const nested: tf.LayersModel[] = [];
    for (const node of graph.nodes) {
      const layer = node.layer;
      if (!(layer instanceof tf.LayersModel) || subs.has(layer)) continue;
      const inner = foldModel(layer, options);
      nested.push(inner.model);
      result.folded.push(...inner.folded);
      result.skipped.push(...inner.skipped);
      result.fused.push(...inner.fusedActivations);
      if (inner.folded.length + inner.fusedActivations.length > 0) {
        subs.set(layer, { replace: nestedModelSpec(inner.model) });
      }
    }
    try {
      const folded = rewriteModel(model, subs, { owner });
      return {
        model: folded,
        folded: result.folded,
        skipped: result.skipped,
        fusedActivations: result.fused,
      };
    } finally {
      nested.forEach((m) => m.dispose());
    }
  } finally {
    folder.dispose();
  }
}
