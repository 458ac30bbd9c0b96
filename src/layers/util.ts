/** Small helpers shared by the pack's layers. */
import * as tf from '@tensorflow/tfjs';
import { BASE_LAYER_ARGS, checkOptionKeys, describeLayer, invalidArgument } from '../errors';
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
 * Rejects constructor arguments the layer's class does not accept: the class's static
 * `acceptedArgs` (each class extends its base's list), or only the base `tf.layers.Layer`
 * arguments when the class has none. Called by each base constructor, after `super(args)` has set
 * the layer's name, so the message names the layer as the user wrote it (`Dropout 'drop_a'`).
 */
export function checkLayerArgs(layer: tf.layers.Layer, args: unknown): void {
  const accepted =
    (layer.constructor as { acceptedArgs?: readonly string[] }).acceptedArgs ?? BASE_LAYER_ARGS;
  let given = args;
  if (args != null && typeof args === 'object' && !Array.isArray(args)) {
    // tfjs's deserializer (tf.loadLayersModel, nested models) adds `customObjects` to every
    // config it hands to fromConfig; it is not the user's, so it is neither checked nor listed.
    const rest: Record<string, unknown> = { ...args };
    delete rest.customObjects;
    given = rest;
  }
  checkOptionKeys(describeLayer(layer), given, accepted, 'argument');
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
