/** Small helpers shared by the pack's layers. */
import * as tf from '@tensorflow/tfjs';
import {
  BASE_LAYER_ARGS,
  BASE_LAYER_ARG_TYPES,
  OptionSpec,
  checkOptionKeys,
  checkOptionTypes,
  describeLayer,
  invalidArgument,
} from '../errors';
import { DataFormat } from '../ops/dropout';

/** The `kwargs` tf.layers passes to `Layer.call` (`training`, `mask`, …). */
export type Kwargs = Record<string, unknown>;

// Who complains when a caller does not say: a layer that has not named itself yet.
const ANONYMOUS_OWNER = 'layer';

/**
 * The one tensor of a single-input layer (tf.layers may pass a one-element array).
 * @param owner the layer, as {@link describeLayer} names it, for the error message.
 */
export function singleTensor(inputs: tf.Tensor | tf.Tensor[], owner = ANONYMOUS_OWNER): tf.Tensor {
  if (Array.isArray(inputs)) {
    if (inputs.length !== 1) {
      throw invalidArgument(
        owner,
        'number of input tensors',
        inputs.length,
        'to be 1 (the layer takes one input)',
        'Apply the layer to each tensor separately, or concatenate them first (tf.layers.concatenate).',
      );
    }
    return inputs[0];
  }
  return inputs;
}

/**
 * The one shape of a single-input layer's `build` / `computeOutputShape` argument.
 * @param owner the layer, as {@link describeLayer} names it, for the error message.
 */
export function singleShape(shape: tf.Shape | tf.Shape[], owner = ANONYMOUS_OWNER): tf.Shape {
  if (Array.isArray(shape[0])) {
    const shapes = shape as tf.Shape[];
    if (shapes.length !== 1) {
      throw invalidArgument(
        owner,
        'number of inputs',
        shapes.length,
        'to be 1 (the layer takes one input)',
        `Received input shapes ${JSON.stringify(shapes)}. Apply the layer to each input ` +
          'separately, or concatenate them first (tf.layers.concatenate).',
      );
    }
    return shapes[0];
  }
  return shape as tf.Shape;
}

/**
 * Rejects constructor arguments the layer's class does not accept, and accepted ones of the wrong
 * type. The names are the class's static `acceptedArgs` (each class extends its base's list), or
 * only the base `tf.layers.Layer` arguments when the class has none; the types are its static
 * `argTypes` ({@link OptionSpec}: `{ momentum: 'number|null', center: 'boolean', … }`, extending
 * its base's), or {@link BASE_LAYER_ARG_TYPES}. A new layer declares both from one spec:
 *
 * ```ts
 * static readonly argTypes: OptionSpec = { ...BASE_LAYER_ARG_TYPES, ...optionSpec<OwnArgs>({ groups: 'integer' }) };
 * static readonly acceptedArgs: readonly string[] = Object.keys(MyLayer.argTypes);
 * ```
 *
 * Called by each base constructor, after `super(args)` has set the layer's name, so the message
 * names the layer as the user wrote it (`Dropout 'drop_a'`); a JSON config (tf.loadLayersModel)
 * reaches the same check through `fromConfig`.
 */
export function checkLayerArgs(layer: tf.layers.Layer, args: unknown): void {
  const ctor = layer.constructor as { acceptedArgs?: readonly string[]; argTypes?: OptionSpec };
  const accepted = ctor.acceptedArgs ?? BASE_LAYER_ARGS;
  let given = args;
  if (args != null && typeof args === 'object' && !Array.isArray(args)) {
    // tfjs's deserializer (tf.loadLayersModel, nested models) adds `customObjects` to every
    // config it hands to fromConfig; it is not the user's, so it is neither checked nor listed.
    const rest: Record<string, unknown> = { ...args };
    delete rest.customObjects;
    given = rest;
  }
  const owner = describeLayer(layer);
  checkOptionKeys(owner, given, accepted, 'argument');
  if (given == null) return;
  // Only the accepted names: a subclass that lists fewer names than its base types stays exact.
  const types = ctor.argTypes ?? BASE_LAYER_ARG_TYPES;
  const own = Object.fromEntries(Object.entries(types).filter(([k]) => accepted.includes(k)));
  checkOptionTypes(owner, given as Record<string, unknown>, own);
}

/**
 * Checks ε's range: a finite number > 0 (it keeps 1/√(σ²+ε) finite). Its type ('number') is checked
 * before, by `checkLayerArgs` from the class's `argTypes`. Shared by the normalization layers
 * (GroupNorm, RMSNorm).
 */
export function checkEpsilon(owner: string, value: number | undefined, fallback: number): number {
  if (value == null) return fallback;
  if (!(value > 0) || !Number.isFinite(value)) {
    throw invalidArgument(
      owner,
      'epsilon',
      value,
      'to be a finite number > 0',
      `It keeps the inverse square root finite; ${fallback} is the default.`,
    );
  }
  return value;
}

/**
 * Throws when a tensor argument has been disposed, e.g. by the caller while an async call that
 * reads it at every step (`mcPredictAsync`) is still running; tfjs would fail inside an op with
 * "Tensor is disposed", naming neither the function nor the argument.
 * @param owner who complains, e.g. `mcPredictAsync`.
 * @param arg the argument's name, e.g. `x`.
 */
export function checkNotDisposed(owner: string, arg: string, tensors: tf.Tensor | tf.Tensor[]) {
  const list = Array.isArray(tensors) ? tensors : [tensors];
  const i = list.findIndex((t) => t.isDisposed);
  if (i < 0) return;
  throw invalidArgument(
    owner,
    list.length === 1 ? arg : `${arg}[${i}]`,
    `a disposed tensor of shape ${JSON.stringify(list[i].shape)}`,
    'to stay alive until the call returns',
    'Dispose it after the promise resolves (an async call reads it at every step).',
  );
}

const DATA_FORMATS: readonly DataFormat[] = ['channelsLast', 'channelsFirst'];

/** Checks a `dataFormat` argument and returns it (default channels-last). */
export function checkDataFormat(owner: string, value: unknown): DataFormat {
  const dataFormat = (value ?? 'channelsLast') as DataFormat;
  if (!DATA_FORMATS.includes(dataFormat)) {
    throw invalidArgument(owner, 'dataFormat', value, "to be 'channelsLast' or 'channelsFirst'");
  }
  return dataFormat;
}

/** A layer of a model and its path: layer names from the outer model in, joined by '/'. */
export interface LayerPath {
  layer: tf.layers.Layer;
  /** e.g. `'dense_1'`, or `'encoder/dropout_2'` for a layer of the nested model `encoder`. */
  path: string;
}

/**
 * The layers a wrapper layer runs: `forwardLayer` and `backwardLayer` of a `Bidirectional` (the
 * copies it calls; its `layer` is only their template), the `layer` of a `TimeDistributed` (or of
 * any other tfjs `Wrapper`); none for any other layer.
 */
export function wrappedLayers(layer: tf.layers.Layer): tf.layers.Layer[] {
  const w = layer as unknown as Record<string, unknown>;
  if (w.forwardLayer instanceof tf.layers.Layer && w.backwardLayer instanceof tf.layers.Layer) {
    return [w.forwardLayer, w.backwardLayer];
  }
  return w.layer instanceof tf.layers.Layer ? [w.layer] : [];
}

/**
 * Every layer of `model` (input layers excluded), descending into nested models and wrapper
 * layers (a model or wrapper is listed, then the layers inside it, as `outer/inner`), in
 * `model.layers` order.
 */
export function walkLayers(model: tf.LayersModel, prefix = ''): LayerPath[] {
  const out: LayerPath[] = [];
  const visit = (layer: tf.layers.Layer, path: string): void => {
    out.push({ layer, path });
    if (layer instanceof tf.LayersModel) out.push(...walkLayers(layer, `${path}/`));
    for (const inner of wrappedLayers(layer)) visit(inner, `${path}/${inner.name}`);
  };
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'InputLayer') visit(layer, prefix + layer.name);
  }
  return out;
}
