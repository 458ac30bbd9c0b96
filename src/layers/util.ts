/** Small helpers shared by the pack's layers. */
import * as tf from '@tensorflow/tfjs';

/** The `kwargs` tf.layers passes to `Layer.call` (`training`, `mask`, …). */
export type Kwargs = Record<string, unknown>;

/** The one tensor of a single-input layer (tf.layers may pass a one-element array). */
export function singleTensor(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  if (Array.isArray(inputs)) {
    if (inputs.length !== 1) {
      throw new Error(`Expected exactly one input tensor, received ${inputs.length}.`);
    }
    return inputs[0];
  }
  return inputs;
}

/** The one shape of a single-input layer's `build` / `computeOutputShape` argument. */
export function singleShape(shape: tf.Shape | tf.Shape[]): tf.Shape {
  if (Array.isArray(shape[0])) {
    const shapes = shape as tf.Shape[];
    if (shapes.length !== 1) {
      throw new Error(`Expected exactly one input shape, received ${shapes.length}.`);
    }
    return shapes[0];
  }
  return shape as tf.Shape;
}

/** A layer of a model and its path: layer names from the outer model in, joined by '/'. */
export interface LayerPath {
  layer: tf.layers.Layer;
  /** e.g. `'dense_1'`, or `'encoder/dropout_2'` for a layer of the nested model `encoder`. */
  path: string;
}

/**
 * Every layer of `model` (input layers excluded), descending into nested models (a model used as
 * a layer is listed, then its own layers), in `model.layers` order.
 */
export function walkLayers(model: tf.LayersModel, prefix = ''): LayerPath[] {
  const out: LayerPath[] = [];
  for (const layer of model.layers) {
    if (layer.getClassName() === 'InputLayer') continue;
    const path = prefix + layer.name;
    out.push({ layer, path });
    if (layer instanceof tf.LayersModel) out.push(...walkLayers(layer, `${path}/`));
  }
  return out;
}
