/**
 * One call from a trained model to a model for plain tfjs: everything that only matters in
 * training goes, BatchNorms fold into the layers around them, and what remains of the pack becomes
 * tfjs built-in layers, so the result loads with `@tensorflow/tfjs` alone (the spirit of PyTorch's
 * `torch.jit.freeze` with conv-BN fusion, and of the TF converters' inference graphs).
 */
import * as tf from '@tensorflow/tfjs';
import { checkOptionKeys, describeLayer, invalidArgument } from '../errors';
import { AlphaDropout } from '../layers/alpha_dropout';
import { BatchNorm } from '../layers/batch_norm';
import { DropBlock2D } from '../layers/drop_block';
import { DropConnectDense } from '../layers/drop_connect_dense';
import { DropPath } from '../layers/drop_path';
import { Dropout } from '../layers/dropout';
import { GaussianDropout } from '../layers/gaussian_dropout';
import { SpatialDropout1D, SpatialDropout2D, SpatialDropout3D } from '../layers/spatial_dropout';
import { walkLayers, wrappedLayers } from '../layers/util';
import { batchNormAffine } from '../ops/fold';
import {
  BUILTIN_BATCH_NORM,
  MAX_BUILTIN_BATCH_NORM_RANK,
  batchNormAxis,
  batchNormStatistics,
  builtinBatchNormConfig,
  builtinBatchNormWeights,
  checkModelStatistics,
  isBatchNormLayer,
} from './batch_norm_layers';
import type { SkippedLayer } from './convert';
import { PACK_CLASS_NAMES } from '../register';
import { NO_BUILTIN_EQUIVALENT } from './no_builtin';
import { FoldedBatchNorm, foldBatchNorm } from './fold_batch_norm';
import {
  GraphNode,
  LayerSpec,
  ModelGraph,
  Substitution,
  assertLayersModel,
  baseLayerConfig,
  firstCalls,
  modelGraph,
  nestedModelSpec,
  pickConfig,
  rewriteModel,
} from './rewrite';

type Layer = tf.layers.Layer;
type ConfigDict = tf.serialization.ConfigDict;

/** Options of {@link exportForInference}. */
export interface ExportForInferenceOptions {
  /**
   * Merge each `Activation` layer, and each `ReLU` layer without maxValue, into the linear layer
   * feeding it where possible (see `foldBatchNorm`'s option of the same name): Conv2D and Dense
   * then run bias and activation in tfjs's fused kernels. Default true: the export is for
   * inference. Set false to keep those layers (e.g. to read their outputs by name).
   */
  fuseActivations?: boolean;
}

/** A layer the export left out, and why. */
export interface RemovedLayer {
  /** Name of the layer. */
  layer: string;
  /** Its serialization class name (e.g. 'Dropout', 'DropnormDropout', 'ReLU'). */
  className: string;
  /** Why it could go. */
  reason: string;
  /** The layer that took over its effect (a folded scale, a fused activation), if any. */
  into?: string;
}

/** A layer the export replaced by built-in layers. */
export interface ReplacedLayer {
  /** Name of the layer. */
  layer: string;
  /** Its serialization class name. */
  className: string;
  /** Class names of the built-in layers in its place, in order. */
  by: string[];
  /** Why, and why it could not simply go. */
  reason: string;
}

/** Result of {@link exportForInference}. */
export interface ExportForInferenceResult {
  /** The new, uncompiled model; the input model is untouched. */
  model: tf.LayersModel;
  /** BatchNorms folded into linear layers (as in `foldBatchNorm`). */
  folded: FoldedBatchNorm[];
  /** Layers left out: the identity at inference, scales folded into a linear layer, fused activations. */
  removed: RemovedLayer[];
  /** Layers turned into built-in layers. */
  replaced: ReplacedLayer[];
  /** Layers kept as they were (e.g. a built-in BatchNorm that cannot fold), with the reason. */
  skipped: SkippedLayer[];
  /**
   * Pack layers that have no built-in equivalent and are kept as they are (per-sample
   * normalizations: nothing to fold), with the reason. When this is not empty the export needs
   * the pack registered to load (import 'tfjs-dropnorm' before `tf.loadLayersModel`).
   */
  kept: SkippedLayer[];
}

const OWNER = 'exportForInference';

/** Classes that compute the identity at inference (the pack's Dropout only in inverted mode). */
const IDENTITY_AT_INFERENCE = new Set<string>([
  SpatialDropout1D.className,
  SpatialDropout2D.className,
  SpatialDropout3D.className,
  GaussianDropout.className,
  AlphaDropout.className,
  DropBlock2D.className,
  DropPath.className,
  'Dropout',
  'SpatialDropout1D',
  'GaussianDropout',
  'AlphaDropout',
  'GaussianNoise',
]);

/**
 * Every layer class tfjs registers itself (taken when this module loads, after tfjs and before
 * the user's own classes), the pack's excluded (register.ts runs first, and the pack's layers tfjs
 * lacks take Keras class names, not the Dropnorm prefix): what a model may hold to load without
 * the pack.
 */
const BUILTIN_CLASSES: ReadonlySet<string> = new Set(
  Object.keys(tf.serialization.SerializationMap.getMap().classNameMap).filter(
    (n) => !n.startsWith('Dropnorm') && !PACK_CLASS_NAMES.includes(n),
  ),
);

/**
 * Where a scalar factor can be folded into a linear layer's weights: the index of the kernel that
 * scales the output (with the bias) and of the kernel that scales the input. A separable
 * convolution scales its output through the pointwise kernel and its input through the depthwise.
 */
const SCALABLE: Readonly<Record<string, { output: number; input: number }>> = {
  Dense: { output: 0, input: 0 },
  Conv1D: { output: 0, input: 0 },
  Conv2D: { output: 0, input: 0 },
  Conv3D: { output: 0, input: 0 },
  Conv2DTranspose: { output: 0, input: 0 },
  Conv3DTranspose: { output: 0, input: 0 },
  DepthwiseConv2D: { output: 0, input: 0 },
  SeparableConv2D: { output: 1, input: 0 },
};

/**
 * Activations f with f(c·z) = c·f(z) for c > 0 (positive homogeneity), so a positive factor after
 * the layer can move into its kernel and bias.
 */
const HOMOGENEOUS = new Set(['linear', 'relu']);

/** The config keys of tf.layers.dense beyond the base Layer's. */
const BUILTIN_DENSE_KEYS = [
  'units',
  'activation',
  'useBias',
  'kernelInitializer',
  'biasInitializer',
  'kernelRegularizer',
  'biasRegularizer',
  'activityRegularizer',
  'kernelConstraint',
  'biasConstraint',
];

/** A Dense layer's config from a DropConnectDense's: the base Layer keys and the Dense ones. */
function builtinDenseConfig(config: ConfigDict): ConfigDict {
  return { ...baseLayerConfig(config), ...pickConfig(config, BUILTIN_DENSE_KEYS) };
}

/**
 * Whether a layer of the pack is set to stay stochastic at inference (Monte-Carlo dropout): its
 * `mcActive` switch is on, or its config asks for it.
 */
function stochasticAtInference(layer: Layer): boolean {
  if ((layer as { mcActive?: unknown }).mcActive === true) return true;
  const config = layer.getConfig();
  return config.mcDropout === true || config.mcActive === true;
}

/** The inference scale 1 − rate of a classic-mode pack Dropout, or null for any other layer. */
function classicScale(layer: Layer): number | null {
  return layer instanceof Dropout && layer.mode === 'classic' ? 1 - layer.rate : null;
}

/** Pending new weights of linear layers that absorb classic-dropout scales. */
class ScaleFolder {
  private readonly weights = new Map<Layer, tf.Tensor[]>();
  private readonly owned: tf.Tensor[] = [];

  constructor(private readonly graph: ModelGraph) {}

  private current(layer: Layer): tf.Tensor[] {
    let w = this.weights.get(layer);
    if (!w) {
      w = layer.getWeights();
      this.weights.set(layer, w);
    }
    return w;
  }

  private scale(layer: Layer, indices: number[], c: number): void {
    const w = [...this.current(layer)];
    for (const i of indices) {
      w[i] = tf.mul(w[i], c);
      this.owned.push(w[i]);
    }
    this.weights.set(layer, w);
  }

  /** Why `node`'s layer cannot take a scale, or null when it can. */
  private problem(node: GraphNode | null, role: string): string | null {
    if (node == null) return `the ${role} tensor is a model input`;
    const layer = node.layer;
    if (!(layer.getClassName() in SCALABLE)) {
      return `the ${role} layer ${describeLayer(layer)} is not one of ${Object.keys(SCALABLE).join(', ')}`;
    }
    const calls = this.graph.nodesOf(layer).length;
    if (calls !== 1)
      return `the ${role} layer ${describeLayer(layer)} is shared (called ${calls} times)`;
    return null;
  }

  /**
   * Folds the factor `c` of the one-input layer `node` into the layer before it (kernel and bias;
   * its activation must be positively homogeneous) or after it (kernel), and returns the name of
   * the layer that took it; or returns the reasons it could not.
   */
  fold(node: GraphNode, c: number): { into: string } | { reason: string } {
    const input = node.inputs[0];
    const before = this.graph.producer(input);
    let backward = this.problem(before, 'preceding');
    if (!backward) {
      const layer = before!.layer;
      const activation = String(layer.getConfig().activation ?? 'linear');
      if (this.graph.useCount(input) !== 1) {
        backward = `the output of ${describeLayer(layer)} has other consumers`;
      } else if (!HOMOGENEOUS.has(activation)) {
        backward = `${describeLayer(layer)} has the activation '${activation}' (f(c·z) ≠ c·f(z))`;
      } else {
        const { output } = SCALABLE[layer.getClassName()];
        const bias = layer.getConfig().useBias === false ? [] : [this.current(layer).length - 1];
        this.scale(layer, [output, ...bias], c);
        return { into: layer.name };
      }
    }
    const output = node.outputs[0];
    const consumers = this.graph.consumers(output);
    const forward: string | null =
      this.graph.useCount(output) !== 1 || consumers.length !== 1
        ? 'its output has several consumers'
        : this.problem(consumers[0], 'next');
    if (!forward) {
      const layer = consumers[0].layer;
      this.scale(layer, [SCALABLE[layer.getClassName()].input], c);
      return { into: layer.name };
    }
    return { reason: `not into the preceding layer (${backward}), nor into the next (${forward})` };
  }

  /** Substitutions giving each changed linear layer its new weights. */
  substitutions(subs: Map<Layer, Substitution>): void {
    for (const [layer, weights] of this.weights) {
      if (weights.every((w) => !this.owned.includes(w))) continue;
      subs.set(layer, {
        replace: { className: layer.getClassName(), config: layer.getConfig(), weights },
      });
    }
  }

  dispose(): void {
    tf.dispose(this.owned);
  }
}

/** Report of one (possibly nested) export. */
interface Report {
  folded: FoldedBatchNorm[];
  removed: RemovedLayer[];
  replaced: ReplacedLayer[];
  skipped: SkippedLayer[];
  kept: SkippedLayer[];
}

/** A classic dropout whose inference scale 1 − rate went into the weights of `into`: it goes. */
function removeFoldedDropout(
  layer: Layer,
  scale: number,
  into: string,
  subs: Map<Layer, Substitution>,
  report: Report,
): void {
  subs.set(layer, { remove: true });
  report.removed.push({
    layer: layer.name,
    className: layer.getClassName(),
    into,
    reason: `classic dropout: its inference scale 1 − rate = ${scale} is folded into the weights of '${into}'`,
  });
}

/**
 * The check that must pass before any work: every layer, inside nested models and wrappers too,
 * has a deterministic inference function.
 */
function checkModel(model: tf.LayersModel): void {
  for (const { layer } of walkLayers(model)) {
    if (stochasticAtInference(layer)) {
      throw invalidArgument(
        OWNER,
        `the inference mode of ${describeLayer(layer)}`,
        'stochastic (Monte-Carlo dropout)',
        'to be deterministic',
        'No tfjs built-in layer draws noise at inference, so the export would change what the model computes. Turn the Monte-Carlo mode off for the export, or keep the pack layer (and ship the pack).',
      );
    }
  }
}

/** Whether a layer is the identity at inference (and can go). */
function identityAtInference(layer: Layer): boolean {
  const c = classicScale(layer);
  return (
    IDENTITY_AT_INFERENCE.has(layer.getClassName()) ||
    c === 1 ||
    (layer instanceof Dropout && c === null)
  );
}

/**
 * Stage 1 for a `TimeDistributed` wrapper: its layer runs on each time step, so a layer that acts
 * elementwise or per channel at inference needs no wrapper. A dropout inside goes (the identity),
 * a classic dropout becomes a `Rescaling` of the whole sequence, a BatchNorm is unwrapped into the
 * same BN over the sequence (its axis one further: the time axis is inserted at 1) so it folds or
 * exports like any other, and a DropConnectDense becomes a TimeDistributed Dense. Anything else
 * stays wrapped (stage 3 reports classes a plain tfjs cannot load).
 */
function timeDistributed(node: GraphNode, subs: Map<Layer, Substitution>, report: Report): void {
  const wrapper = node.layer;
  const [inner] = wrappedLayers(wrapper);
  const path = `${wrapper.name}/${inner.name}`;
  const className = inner.getClassName();
  const base = baseLayerConfig(wrapper.getConfig());
  const c = classicScale(inner);
  if (identityAtInference(inner)) {
    subs.set(wrapper, { remove: true });
    report.removed.push({
      layer: path,
      className,
      reason: `the identity at inference (inside ${describeLayer(wrapper)}, which goes with it)`,
    });
  } else if (c !== null) {
    subs.set(wrapper, {
      replace: { className: 'Rescaling', config: { ...base, scale: c, offset: 0 }, weights: [] },
    });
    report.replaced.push({
      layer: path,
      className,
      by: ['Rescaling'],
      reason: `classic dropout multiplies by 1 − rate = ${c} at inference, at every time step of ${describeLayer(wrapper)}`,
    });
  } else if (inner instanceof DropConnectDense) {
    const config = {
      ...wrapper.getConfig(),
      layer: { className: 'Dense', config: builtinDenseConfig(inner.getConfig()) },
    };
    subs.set(wrapper, { replace: { className: wrapper.getClassName(), config } });
    report.replaced.push({
      layer: path,
      className,
      by: ['Dense'],
      reason: `at inference DropConnectDense is a Dense layer with the same weights (still inside ${describeLayer(wrapper)})`,
    });
  } else if (isBatchNormLayer(inner)) {
    const innerRank = node.inputs[0].shape.length - 1;
    const axis = batchNormAxis(inner, innerRank) + 1;
    subs.set(wrapper, {
      replace: { className, config: { ...inner.getConfig(), ...base, axis } },
    });
    report.replaced.push({
      layer: path,
      className: wrapper.getClassName(),
      by: [className],
      reason: `a BN applied at each time step is, at inference, the same BN over the sequence (axis ${axis}): unwrapped as '${wrapper.name}' so it folds or exports like any BN`,
    });
  }
}

/**
 * Stage 1, on the input graph: layers that are the identity at inference go, DropConnectDense
 * becomes Dense, classic-dropout scales fold into a neighbouring linear layer, nested models are
 * exported on their own. Returns the substitutions (the BatchNorms are left for foldBatchNorm).
 */
function trainingOnlyLayers(
  graph: ModelGraph,
  report: Report,
  scales: ScaleFolder,
  nested: tf.LayersModel[],
  fuseActivations: boolean,
): Map<Layer, Substitution> {
  const subs = new Map<Layer, Substitution>();
  for (const node of firstCalls(graph.nodes)) {
    const layer = node.layer;
    const className = layer.getClassName();
    const c = classicScale(layer);
    if (className === 'TimeDistributed' && wrappedLayers(layer).length === 1) {
      timeDistributed(node, subs, report);
    } else if (identityAtInference(layer)) {
      subs.set(layer, { remove: true });
      report.removed.push({ layer: layer.name, className, reason: 'the identity at inference' });
    } else if (c !== null && graph.nodesOf(layer).length === 1) {
      const result = scales.fold(node, c);
      if ('into' in result) removeFoldedDropout(layer, c, result.into, subs, report);
    } else if (layer instanceof DropConnectDense) {
      subs.set(layer, {
        replace: { className: 'Dense', config: builtinDenseConfig(layer.getConfig()) },
      });
      report.replaced.push({
        layer: layer.name,
        className,
        by: ['Dense'],
        reason: 'at inference DropConnectDense is a Dense layer with the same weights',
      });
    } else if (layer instanceof tf.LayersModel) {
      const inner = exportModel(layer, fuseActivations);
      nested.push(inner.model);
      for (const k of ['folded', 'removed', 'replaced', 'skipped', 'kept'] as const) {
        (report[k] as unknown[]).push(...inner[k]);
      }
      subs.set(layer, { replace: nestedModelSpec(inner.model) });
    }
  }
  return subs;
}

/**
 * Stage 3, on the folded graph: classic-dropout scales that could not fold before may fold now,
 * or become a built-in Rescaling; the pack's BatchNorms that did not fold become built-in
 * BatchNormalization (behind a Permute pair when channels-first, which the built-in gets wrong,
 * tfjs#1106); anything else that is not a tfjs class is reported.
 */
function remainingLayers(
  graph: ModelGraph,
  report: Report,
  scales: ScaleFolder,
  foldReasons: ReadonlyMap<string, string>,
  owned: tf.Tensor[],
): Map<Layer, Substitution> {
  const subs = new Map<Layer, Substitution>();
  for (const node of firstCalls(graph.nodes)) {
    const layer = node.layer;
    const className = layer.getClassName();
    const c = classicScale(layer);
    if (c !== null) {
      const result =
        graph.nodesOf(layer).length === 1
          ? scales.fold(node, c)
          : { reason: `the layer is shared (called ${graph.nodesOf(layer).length} times)` };
      if ('into' in result) {
        removeFoldedDropout(layer, c, result.into, subs, report);
      } else {
        const base = baseLayerConfig(layer.getConfig());
        subs.set(layer, {
          replace: {
            className: 'Rescaling',
            config: { ...base, scale: c, offset: 0 },
            weights: [],
          },
        });
        report.replaced.push({
          layer: layer.name,
          className,
          by: ['Rescaling'],
          reason: `classic dropout multiplies by 1 − rate = ${c} at inference; it could fold ${result.reason}`,
        });
      }
    } else if (layer instanceof BatchNorm) {
      subs.set(layer, builtinBatchNorm(node, report, owned, foldReasons.get(layer.name)));
    } else if (className === BUILTIN_BATCH_NORM) {
      if (node.inputs[0].shape.length > MAX_BUILTIN_BATCH_NORM_RANK) {
        subs.set(layer, builtinBatchNorm(node, report, owned, foldReasons.get(layer.name)));
      } else {
        report.skipped.push({
          layer: layer.name,
          className,
          reason: `not folded: ${foldReasons.get(layer.name) ?? 'unknown reason'}`,
        });
      }
    } else if (!(layer instanceof tf.LayersModel)) {
      reportForeignClasses(layer, report);
    }
  }
  return subs;
}

/**
 * Reports a layer that a plain tfjs cannot load (its class, or a class inside it when it is a
 * wrapper, is not tfjs's): in `kept` when the class is a pack layer with no built-in equivalent
 * ({@link NO_BUILTIN_EQUIVALENT}), else in `skipped`.
 */
function reportForeignClasses(layer: Layer, report: Report): void {
  const inside = wrappedLayers(layer).map((l) => ({ l, path: `${layer.name}/${l.name}` }));
  for (const { l, path } of [{ l: layer, path: layer.name }, ...inside]) {
    const className = l.getClassName();
    const noBuiltin = NO_BUILTIN_EQUIVALENT.get(className);
    if (noBuiltin == null && BUILTIN_CLASSES.has(className)) continue;
    if (noBuiltin != null) {
      report.kept.push({
        layer: path,
        className,
        reason: `${noBuiltin}: kept as the pack's layer, so the export needs the pack registered to load`,
      });
    } else {
      report.skipped.push({
        layer: path,
        className,
        reason:
          'not a tfjs built-in class: the exported model loads only where this class is registered',
      });
    }
  }
}

/**
 * The per-channel affine map of a BN, `y = s·x + t`, as a built-in Dense on the channel axis (last):
 * kernel diag(s), bias t. What a BN of rank above {@link MAX_BUILTIN_BATCH_NORM_RANK} becomes, as
 * tf.layers.batchNormalization cannot run it. The kernel and bias are added to `owned`.
 */
function affineDenseSpec(layer: Layer, owned: tf.Tensor[]): LayerSpec {
  const affine = batchNormAffine(batchNormStatistics(layer));
  const channels = affine.scale.size;
  const kernel = tf.tidy(() => tf.mul(tf.eye(channels), tf.reshape(affine.scale, [1, channels])));
  owned.push(affine.scale, affine.shift, kernel);
  return {
    className: 'Dense',
    config: {
      ...baseLayerConfig(layer.getConfig()),
      units: channels,
      activation: 'linear',
      useBias: true,
    },
    weights: [kernel, affine.shift],
  };
}

/**
 * The built-in layers for a BatchNorm that did not fold (its inference map, exactly): a built-in
 * BatchNormalization, or up to rank {@link MAX_BUILTIN_BATCH_NORM_RANK} only; beyond it (Conv3D nets)
 * the same affine map as a Dense with a diagonal kernel.
 */
function builtinBatchNorm(
  node: GraphNode,
  report: Report,
  owned: tf.Tensor[],
  foldReason?: string,
): Substitution {
  const layer = node.layer;
  const rank = node.inputs[0].shape.length;
  const axis = batchNormAxis(layer, rank);
  const why = `not folded (${foldReason ?? 'unknown reason'})`;
  let core: LayerSpec;
  let how: string;
  if (rank > MAX_BUILTIN_BATCH_NORM_RANK) {
    core = affineDenseSpec(layer, owned);
    how = `tf.layers.batchNormalization cannot run a rank-${rank} input in tfjs 4.22, so its inference map y = s·x + t (s = γ/√(σ²+ε), t = β − μ·s) is a Dense with kernel diag(s) and bias t`;
  } else {
    const config = builtinBatchNormConfig(layer);
    // Inference never reads momentum; the built-in needs a number where the pack allows null.
    if (config.momentum == null) config.momentum = 0.99;
    core = {
      className: BUILTIN_BATCH_NORM,
      config: { ...config, axis: -1 },
      weights: builtinBatchNormWeights(layer),
    };
    how = 'the built-in computes the same inference map';
  }
  if (axis === rank - 1) {
    report.replaced.push({
      layer: layer.name,
      className: layer.getClassName(),
      by: [core.className],
      reason: `${why}; ${how}`,
    });
    return { replace: core };
  }
  // Permute's dims count from 1 and leave the batch axis out.
  const dims = Array.from({ length: rank - 1 }, (_, i) => i + 1);
  const toLast = [...dims.filter((d) => d !== axis), axis];
  const back = dims.map((d) => toLast.indexOf(d) + 1);
  report.replaced.push({
    layer: layer.name,
    className: layer.getClassName(),
    by: ['Permute', core.className, 'Permute'],
    reason: `${why}; channels-first (axis ${axis}), so its channels are moved last around it (tf.layers.batchNormalization computes channels-first wrongly, tfjs#1106); ${how}`,
  });
  return {
    chain: [
      {
        className: 'Permute',
        config: { name: `${layer.name}_to_channels_last`, dims: toLast },
        weights: [],
      },
      core,
      {
        className: 'Permute',
        config: { name: `${layer.name}_from_channels_last`, dims: back },
        weights: [],
      },
    ],
  };
}

/**
 * A layer reported `removed` (the identity at inference) that is now a built-in identity because
 * its output is a model output that would otherwise equal another output or an input (see
 * rewriteModel): moved to `replaced`.
 */
function identityOutputs(model: tf.LayersModel, report: Report): void {
  const identities = new Set(
    model.layers.filter((l) => l.getClassName() === 'Activation').map((l) => l.name),
  );
  report.removed = report.removed.filter((r) => {
    if (r.into != null || r.className === 'Activation' || !identities.has(r.layer)) return true;
    report.replaced.push({
      layer: r.layer,
      className: r.className,
      by: ['Activation'],
      reason: `${r.reason}, but its output is a model output that would be the same tensor as another output (or an input), which tfjs cannot return twice: a linear Activation keeps the outputs apart`,
    });
    return false;
  });
}

function exportModel(model: tf.LayersModel, fuseActivations: boolean): ExportForInferenceResult {
  const report: Report = { folded: [], removed: [], replaced: [], skipped: [], kept: [] };
  const created: tf.LayersModel[] = [];
  const owned: tf.Tensor[] = [];
  const nested: tf.LayersModel[] = [];
  let scales: ScaleFolder | null = null;
  try {
    scales = new ScaleFolder(modelGraph(model));
    const first = trainingOnlyLayers(modelGraph(model), report, scales, nested, fuseActivations);
    scales.substitutions(first);
    let current = model;
    if (first.size > 0) {
      current = rewriteModel(model, first, { owner: OWNER });
      created.push(current);
    }
    scales.dispose();
    scales = null;

    const classOf = new Map(
      modelGraph(current).nodes.map((n) => [n.layer.name, n.layer.getClassName()]),
    );
    const folding = foldBatchNorm(current, { fuseActivations });
    created.push(folding.model);
    current = folding.model;
    report.folded.push(...folding.folded);
    const graph = modelGraph(current);
    for (const f of folding.fusedActivations) {
      report.removed.push({
        layer: f.activation,
        className: classOf.get(f.activation) ?? 'Activation',
        into: f.into,
        reason: `fused into '${f.into}' as its activation`,
      });
    }
    const foldReasons = new Map(folding.skipped.map((s) => [s.batchNorm, s.reason]));

    scales = new ScaleFolder(graph);
    const last = remainingLayers(graph, report, scales, foldReasons, owned);
    scales.substitutions(last);
    if (last.size > 0) {
      current = rewriteModel(current, last, { owner: OWNER });
      created.push(current);
    }
    identityOutputs(current, report);
    created.pop(); // the result is the caller's
    return { model: current, ...report };
  } catch (e) {
    created.forEach((m) => m.dispose());
    created.length = 0;
    throw e;
  } finally {
    scales?.dispose();
    tf.dispose(owned);
    created.forEach((m) => m.dispose());
    nested.forEach((m) => m.dispose());
  }
}

/**
 * A copy of `model` for inference with tfjs built-in layers only: it loads with plain
 * `@tensorflow/tfjs` (`tf.loadLayersModel`) and computes what `model.predict` computes, within
 * float32 rounding. In order:
 *
 * 1. Layers that are the identity at inference are removed: the pack's inverted Dropout,
 *    SpatialDropout1D/2D/3D, GaussianDropout, AlphaDropout, DropBlock2D and DropPath, and the
 *    built-in Dropout, SpatialDropout1D, GaussianDropout, AlphaDropout and GaussianNoise.
 * 2. Classic dropout (the pack's Dropout with `mode: 'classic'`, y = (1 − p)·x at inference) is
 *    folded into a neighbouring linear layer: into the one before it, W' = (1−p)·W, b' = (1−p)·b,
 *    when that layer's activation is linear or ReLU (f(c·z) = c·f(z) for c > 0) and nothing else
 *    reads its output; else into the one after it, W' = (1−p)·W. Where neither is possible (also
 *    after step 4) it becomes a built-in `Rescaling` layer with scale 1 − p.
 * 3. DropConnectDense becomes `tf.layers.dense` with the same weights (its inference function).
 * 4. BatchNorms fold into their linear layers ({@link foldBatchNorm}: W' = W·γ/√(σ²+ε),
 *    b' = (b−μ)·γ/√(σ²+ε) + β), with activations fused per `options.fuseActivations`.
 * 5. A pack BatchNorm that did not fold becomes a built-in `BatchNormalization` with the same
 *    inference parameters; channels-first ones, which the built-in computes along the wrong axis
 *    (tfjs#1106), sit between two `Permute` layers that move the channels last and back. Above
 *    rank 4 (Conv3D nets), which tf.layers.batchNormalization cannot run in tfjs 4.22, a BN (the
 *    pack's or the built-in) becomes its affine map y = s·x + t as a `Dense` with kernel diag(s)
 *    and bias t (a Conv3D before it with a linear activation takes it in step 4 instead).
 *
 * Nested models are exported the same way, and layers inside `tf.layers.timeDistributed`: a
 * dropout inside goes with its wrapper, a BatchNorm inside is unwrapped into the same BN over the
 * sequence (axis + 1) and then folds or becomes built-in, a DropConnectDense inside becomes a
 * Dense. Built-in BatchNorms that cannot fold stay (in `skipped`, with the reason), as does any
 * layer (or layer inside a wrapper) whose class is neither tfjs's nor the pack's. Pack layers with
 * no built-in equivalent (per-sample normalizations) stay and are listed in `kept`: the export then
 * needs the pack to load. When removing a layer would make two outputs (or an output and an input)
 * the same tensor, a linear `Activation` keeps them apart (listed in `replaced`).
 *
 * No value is read back from the backend (no `dataSync`): BatchNorm statistics are not checked here
 * (broken ones export into non-finite weights, computing what the BN computes); use
 * {@link exportForInferenceAsync} to have them checked with one awaited read.
 *
 * @returns the new, uncompiled model and what was done: `folded`, `removed`, `replaced`, `skipped`,
 *   `kept`. The input model and its weights are never modified; a failure leaves nothing behind.
 * @throws DropnormValueError if `model` is not a LayersModel (or is disposed), an option is unknown
 *   or not a boolean, a pack dropout layer is set to stay stochastic at inference (Monte-Carlo
 *   dropout: no built-in can express it), or a layer's class is not registered.
 */
export function exportForInference(
  model: tf.LayersModel,
  options: ExportForInferenceOptions = {},
): ExportForInferenceResult {
  assertLayersModel(OWNER, model);
  checkOptionKeys(OWNER, options, ['fuseActivations']);
  const fuse = options?.fuseActivations ?? true;
  if (typeof fuse !== 'boolean') {
    throw invalidArgument(OWNER, 'options.fuseActivations', fuse, 'to be true or false');
  }
  checkModel(model);
  return exportModel(model, fuse);
}

/**
 * {@link exportForInference} that first checks every BatchNorm's statistics, nested models and
 * wrappers included, with one awaited read (no synchronous read): a BN with a non-finite moving
 * mean, variance, γ or β, or with σ²+ε ≤ 0, has no inference map and is an error (named by layer
 * and channel).
 *
 * @throws DropnormValueError as {@link exportForInference}, and for broken BatchNorm statistics.
 */
export async function exportForInferenceAsync(
  model: tf.LayersModel,
  options: ExportForInferenceOptions = {},
): Promise<ExportForInferenceResult> {
  await checkModelStatistics('exportForInferenceAsync', model, options, ['fuseActivations']);
  return exportForInference(model, options);
}
