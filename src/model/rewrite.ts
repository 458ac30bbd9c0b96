/**
 * The one graph-rewrite helper under every whole-model transform: clone a LayersModel with
 * substitutions (replace a layer by another, or remove a one-input layer by routing its input
 * through). foldBatchNorm, convertToDropnorm and convertToBuiltins are all built on it.
 *
 * The graph is read from the model's own topology (each SymbolicTensor's producing node, each
 * node's input and output tensors), starting at `model.outputs`, so Sequential and functional
 * models, multiple inputs and outputs, shared layers and residual branches all take the same path.
 * Every layer is re-created from `getClassName()` + `getConfig()` through tfjs's SerializationMap,
 * so the clone owns new layer objects and new weight variables holding copied values.
 */
import * as tf from '@tensorflow/tfjs';
import { BASE_LAYER_ARGS, checkOptionKeys, invalidArgument, optionSpec } from '../errors';

type Layer = tf.layers.Layer;
type SymbolicTensor = tf.SymbolicTensor;
type ConfigDict = tf.serialization.ConfigDict;

/** A call of a layer inside the model: the layer, its input and output tensors. */
export interface GraphNode {
  layer: Layer;
  inputs: SymbolicTensor[];
  outputs: SymbolicTensor[];
  /** Keyword arguments of the call (tfjs's `Node.callArgs`), passed again when rebuilding. */
  callArgs: Record<string, unknown>;
}

/** The model's graph in topological order, with the queries transforms need. */
export interface ModelGraph {
  model: tf.LayersModel;
  /** Every layer call reachable from the outputs (input layers excluded), producers first. */
  nodes: GraphNode[];
  /** The node producing `tensor`, or null for a model input. */
  producer(tensor: SymbolicTensor): GraphNode | null;
  /** The nodes reading `tensor`. */
  consumers(tensor: SymbolicTensor): GraphNode[];
  /** How many times `tensor` is read: by nodes, plus once per model output it is. */
  useCount(tensor: SymbolicTensor): number;
  /** The calls of `layer` in this model (more than one for a shared layer). */
  nodesOf(layer: Layer): GraphNode[];
}

/** A layer to create: class name (as registered with tfjs), config, and optionally its weights. */
export interface LayerSpec {
  className: string;
  config: ConfigDict;
  /** Values for `setWeights` after the layer is built; default: the replaced layer's weights. */
  weights?: tf.Tensor[];
}

/** Each layer of `nodes` once, at its first call: a shared layer is decided where it is first called. */
export function firstCalls(nodes: readonly GraphNode[]): GraphNode[] {
  const seen = new Set<Layer>();
  return nodes.filter((node) => {
    if (seen.has(node.layer)) return false;
    seen.add(node.layer);
    return true;
  });
}

/** The entries of `config` under `keys` (those it has). */
export function pickConfig(config: ConfigDict, keys: readonly string[]): ConfigDict {
  const out: ConfigDict = {};
  for (const key of keys) if (config[key] !== undefined) out[key] = config[key];
  return out;
}

/**
 * The base Layer entries of a config (name, trainable, batchInputShape, dtype, …): what a layer
 * put in another's place keeps of it.
 */
export function baseLayerConfig(config: ConfigDict): ConfigDict {
  return pickConfig(config, BASE_LAYER_ARGS);
}

/**
 * The spec that puts a transformed nested model in place of the one it was made from (same name,
 * its new layers and weights).
 */
export function nestedModelSpec(model: tf.LayersModel): LayerSpec {
  return {
    className: model.getClassName(),
    config: model.getConfig(),
    weights: model.getWeights(),
  };
}

/**
 * What to do with a layer when cloning: replace it, remove it (its one input passes through), or
 * replace a layer of one input and one output by a chain of layers applied in order (each spec's
 * `weights`, or none).
 */
export type Substitution = { replace: LayerSpec } | { remove: true } | { chain: LayerSpec[] };

interface TfNode {
  inputTensors: SymbolicTensor[];
  outputTensors: SymbolicTensor[];
  callArgs?: Record<string, unknown>;
}

function isInputLayer(layer: Layer): boolean {
  return layer.getClassName() === 'InputLayer';
}

/** Throws unless `model` is a tf.LayersModel (Sequential or functional). */
export function assertLayersModel(owner: string, model: unknown): asserts model is tf.LayersModel {
  if (!(model instanceof tf.LayersModel)) {
    const what =
      model == null
        ? String(model)
        : ((model as object).constructor?.name ?? typeof model) || typeof model;
    throw invalidArgument(
      owner,
      'model',
      what,
      'to be a tf.LayersModel (tf.sequential or tf.model)',
      'Graph models from tf.loadGraphModel are not supported; load a layers model with tf.loadLayersModel.',
    );
  }
  // A disposed model fails deep inside a rewrite, after the copy has allocated weights: refuse it
  // first. LayerVariable.read() throws for a disposed variable and allocates nothing.
  for (const weight of model.weights) {
    try {
      weight.read();
    } catch {
      throw invalidArgument(
        owner,
        'model',
        `a disposed model ('${model.name}': weight '${weight.name}' is disposed)`,
        'to hold live weights',
        'model.dispose() (or disposing a layer) freed its weights; use the tool before disposing the model, or load it again.',
      );
    }
  }
}

/** Reads the model's graph; see {@link ModelGraph}. */
export function modelGraph(model: tf.LayersModel): ModelGraph {
  const nodes: GraphNode[] = [];
  const byTfNode = new Map<TfNode, GraphNode>();
  const producerOf = new Map<SymbolicTensor, GraphNode | null>();
  const consumersOf = new Map<SymbolicTensor, GraphNode[]>();
  const byLayer = new Map<Layer, GraphNode[]>();

  const tfNodeOf = (t: SymbolicTensor): TfNode =>
    (t.sourceLayer as unknown as { inboundNodes: TfNode[] }).inboundNodes[t.nodeIndex];

  // Depth-first from the outputs, post-order: every producer is listed before its consumers.
  // Iterative, so deep models do not overflow the stack.
  const visit = (root: SymbolicTensor): void => {
    const stack: Array<{ t: SymbolicTensor; expanded: boolean }> = [{ t: root, expanded: false }];
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const tfNode = tfNodeOf(top.t);
      if (producerOf.has(top.t) || isInputLayer(top.t.sourceLayer)) {
        if (!producerOf.has(top.t)) producerOf.set(top.t, null);
        stack.pop();
        continue;
      }
      const known = byTfNode.get(tfNode);
      if (known) {
        producerOf.set(top.t, known);
        stack.pop();
        continue;
      }
      if (!top.expanded) {
        top.expanded = true;
        for (const input of [...tfNode.inputTensors].reverse()) {
          if (!producerOf.has(input)) stack.push({ t: input, expanded: false });
        }
        continue;
      }
      const node: GraphNode = {
        layer: top.t.sourceLayer,
        inputs: [...tfNode.inputTensors],
        outputs: [...tfNode.outputTensors],
        callArgs: { ...(tfNode.callArgs ?? {}) },
      };
      byTfNode.set(tfNode, node);
      nodes.push(node);
      for (const out of node.outputs) producerOf.set(out, node);
      for (const input of node.inputs) {
        const list = consumersOf.get(input) ?? [];
        list.push(node);
        consumersOf.set(input, list);
      }
      const calls = byLayer.get(node.layer) ?? [];
      calls.push(node);
      byLayer.set(node.layer, calls);
      stack.pop();
    }
  };
  for (const output of model.outputs) visit(output);

  return {
    model,
    nodes,
    producer: (t) => producerOf.get(t) ?? null,
    consumers: (t) => consumersOf.get(t) ?? [],
    useCount: (t) =>
      (consumersOf.get(t)?.length ?? 0) + model.outputs.filter((o) => o === t).length,
    nodesOf: (layer) => byLayer.get(layer) ?? [],
  };
}

/**
 * A new layer object from a class name and config, through tfjs's SerializationMap (the path
 * `tf.models.modelFromJSON` takes). The config is deep-copied first.
 */
export function createLayer(owner: string, spec: LayerSpec, layerName: string): Layer {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[spec.className];
  if (entry == null) {
    throw invalidArgument(
      owner,
      `the class of layer '${layerName}'`,
      spec.className,
      'to be registered with tfjs (tf.serialization.registerClass)',
      'Custom layers must be registered so the model can be cloned (and saved and loaded).',
    );
  }
  const [cls, fromConfig] = entry;
  const config = JSON.parse(JSON.stringify(spec.config)) as ConfigDict;
  return fromConfig(cls, config) as unknown as Layer;
}

/** Options of {@link rewriteModel}. */
export interface RewriteOptions {
  /** Who is asking, for error messages (default 'rewriteModel'). */
  owner?: string;
  /** Name of the new model (default: the input model's name). */
  name?: string;
}

// The keys of RewriteOptions: add a new option here too (tsc checks the two agree).
const REWRITE_OPTIONS = optionSpec<RewriteOptions>({ owner: 'string', name: 'string' });

/**
 * Clones `model` with `substitutions` applied: a new functional LayersModel (a Sequential input
 * gives an equivalent functional model; the clone is not compiled) whose layers are new objects
 * re-created from their configs, holding copies of the original weights, except that
 * - `{ replace: spec }` creates the layer `spec` instead (with `spec.weights`, or the old layer's
 *   weights when omitted), called with the same inputs,
 * - `{ remove: true }` drops a layer of one input and one output: its consumers read its input,
 * - `{ chain: specs }` replaces a layer of one input and one output by the layers `specs`, applied
 *   one after the other (each with its `weights`, if given).
 *
 * A shared layer is re-created once and called at every place the original was. Input layers keep
 * their names, shapes and dtypes. The input model is never modified. Every class is checked before
 * anything is built, so an unregistered layer fails with a clear error and nothing is created.
 */
export function rewriteModel(
  model: tf.LayersModel,
  substitutions: ReadonlyMap<Layer, Substitution> = new Map(),
  options: RewriteOptions = {},
): tf.LayersModel {
  checkOptionKeys('rewriteModel', options, REWRITE_OPTIONS);
  const owner = options.owner ?? 'rewriteModel';
  assertLayersModel(owner, model);
  const graph = modelGraph(model);
  const registry = tf.serialization.SerializationMap.getMap().classNameMap;

  const specs = new Map<Layer, LayerSpec | LayerSpec[] | null>();
  for (const node of graph.nodes) {
    if (specs.has(node.layer)) continue;
    const sub = substitutions.get(node.layer);
    if (sub && ('remove' in sub || 'chain' in sub)) {
      if (node.inputs.length !== 1 || node.outputs.length !== 1) {
        throw invalidArgument(
          owner,
          `inputs and outputs of the ${'remove' in sub ? 'removed' : 'replaced'} layer '${node.layer.name}'`,
          `${node.inputs.length} and ${node.outputs.length}`,
          'to be one each',
        );
      }
      if ('chain' in sub) {
        for (const spec of sub.chain) {
          if (registry[spec.className] == null) createLayer(owner, spec, node.layer.name); // throws
        }
      }
      specs.set(node.layer, 'remove' in sub ? null : sub.chain);
      continue;
    }
    const spec: LayerSpec = sub
      ? sub.replace
      : { className: node.layer.getClassName(), config: node.layer.getConfig() };
    if (registry[spec.className] == null) createLayer(owner, spec, node.layer.name); // throws
    specs.set(node.layer, spec);
  }

  const mapped = new Map<SymbolicTensor, SymbolicTensor>();
  const newInputs = model.inputs.map((t) => {
    const input = tf.input({ batchShape: t.shape, dtype: t.dtype, name: t.sourceLayer.name });
    mapped.set(t, input);
    return input;
  });
  const newLayers = new Map<Layer, Layer>();
  const newChains = new Map<Layer, Array<{ layer: Layer; weights?: tf.Tensor[] }>>();
  try {
    for (const node of graph.nodes) {
      const inputs = node.inputs.map((t) => {
        const m = mapped.get(t);
        if (m == null) {
          throw new Error(
            `${owner}: tensor '${t.name}' feeding layer '${node.layer.name}' is not computed from the model inputs.`,
          );
        }
        return m;
      });
      const spec = specs.get(node.layer);
      if (spec === null) {
        mapped.set(node.outputs[0], inputs[0]);
        continue;
      }
      if (Array.isArray(spec)) {
        let chain = newChains.get(node.layer);
        if (!chain) {
          chain = spec.map((s) => ({
            layer: createLayer(owner, s, node.layer.name),
            weights: s.weights,
          }));
          newChains.set(node.layer, chain);
        }
        let t = inputs[0];
        for (const link of chain) t = link.layer.apply(t, node.callArgs) as SymbolicTensor;
        mapped.set(node.outputs[0], t);
        continue;
      }
      let layer = newLayers.get(node.layer);
      if (!layer) {
        layer = createLayer(owner, spec!, node.layer.name);
        newLayers.set(node.layer, layer);
      }
      const out = layer.apply(inputs.length === 1 ? inputs[0] : inputs, node.callArgs);
      const outs = (Array.isArray(out) ? out : [out]) as SymbolicTensor[];
      node.outputs.forEach((t, i) => mapped.set(t, outs[i]));
    }
    const newOutputs = distinctOutputs(
      model,
      newInputs,
      model.outputs.map((t) => mapped.get(t)!),
      specs,
    );
    const clone = tf.model({
      inputs: newInputs,
      outputs: newOutputs,
      name: options.name ?? model.name,
    });

    for (const chain of newChains.values()) {
      for (const link of chain) if (link.weights) link.layer.setWeights(link.weights);
    }
    for (const [old, layer] of newLayers) {
      const given = (specs.get(old) as LayerSpec).weights;
      if (given) {
        layer.setWeights(given);
      } else {
        // Copies, so disposing either model never frees the other's weights.
        const copies = tf.tidy(() => old.getWeights().map((w) => tf.clone(w)));
        layer.setWeights(copies);
        tf.dispose(copies);
      }
    }
    return clone;
  } catch (e) {
    // Nothing half-built survives a failure: the new layers' weights were allocated when built.
    const created = [...newLayers.values(), ...[...newChains.values()].flat().map((l) => l.layer)];
    for (const layer of created) {
      for (const w of layer.weights) {
        try {
          w.dispose();
        } catch {
          // already disposed
        }
      }
    }
    throw e;
  }
}

/**
 * The rewritten outputs, made distinct: when removing layers makes an output the same tensor as an
 * earlier output or as a model input (outputs `[h, dropout(h)]` once the dropout goes), tfjs's
 * executor cannot return it (`predict` fails with "… got 'null'"), so it goes through a built-in
 * identity, `Activation('linear')`, named after the removed layer (or `<layer>_output_<i>`). An
 * output that was already an input or a repeated output in `model` stays as it was.
 */
function distinctOutputs(
  model: tf.LayersModel,
  newInputs: SymbolicTensor[],
  outputs: SymbolicTensor[],
  specs: ReadonlyMap<Layer, LayerSpec | LayerSpec[] | null>,
): SymbolicTensor[] {
  const seen = new Set<SymbolicTensor>(newInputs);
  const seenBefore = new Set<SymbolicTensor>(model.inputs);
  const named = new Set<string>();
  return outputs.map((t, i) => {
    const original = model.outputs[i];
    const wasDistinct = !seenBefore.has(original);
    seenBefore.add(original);
    if (!seen.has(t) || !wasDistinct) {
      seen.add(t);
      return t;
    }
    // A removed layer's name is free, once (a shared removed layer may give several outputs).
    const base = original.sourceLayer.name;
    const free = specs.get(original.sourceLayer) === null && !named.has(base);
    const name = free ? base : `${base}_output_${i}`;
    named.add(name);
    return tf.layers.activation({ activation: 'linear', name }).apply(t) as SymbolicTensor;
  });
}
