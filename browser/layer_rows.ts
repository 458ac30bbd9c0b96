/**
 * The layers the backend page checks, one row per configuration. The page derives the list of
 * layers to cover from the pack's registered classes (`dn.PACK_CLASS_NAMES`): a registered layer
 * class with no row here is reported as missing and fails the browser test, so a layer added to
 * the pack (register.ts) is covered by adding a row below.
 */
import * as tf from '@tensorflow/tfjs';
import * as dn from 'tfjs-dropnorm';

/** One layer configuration of the backend checks. */
export interface LayerRow {
  /** What the page reports (unique). */
  name: string;
  /** The registered class name the row covers (`getClassName()` of what `make` returns). */
  className: string;
  /** A fresh pack layer; seeded, so every backend draws the same masks. */
  make: () => tf.layers.Layer;
  /**
   * The tfjs built-in it stands next to, when tfjs has one with the same seeded behaviour (the f16
   * run compares the two; tfjs's GaussianDropout and AlphaDropout take no seed).
   */
  builtin?: () => tf.layers.Layer;
  /** Input shape, batch included (small: software GPUs compile one shader per op and shape). */
  shape: number[];
  /**
   * Where the seeded mask acts, for the mask check: on the input (the dropout family; the mask is
   * the zero pattern of ∂Σy/∂x) or on the layer's `kernel` (DropConnect: the zero pattern of
   * ∂Σy/∂kernel). Absent: the layer is deterministic (BatchNorm).
   */
  mask?: 'input' | 'kernel';
}

const glorot = (seed: number) => tf.initializers.glorotUniform({ seed });

/** Every row; add one for a new layer (or a new configuration worth its own shaders). */
export const LAYER_ROWS: LayerRow[] = [
  {
    name: 'BatchNorm',
    className: 'DropnormBatchNorm',
    make: () => dn.layers.batchNorm({ momentum: 0.9 }),
    builtin: () => tf.layers.batchNormalization({ momentum: 0.9 }),
    shape: [8, 6],
  },
  {
    name: 'BatchNorm conv (rank 4)',
    className: 'DropnormBatchNorm',
    make: () => dn.layers.batchNorm({ momentum: 0.9 }),
    builtin: () => tf.layers.batchNormalization({ momentum: 0.9 }),
    shape: [4, 3, 3, 5],
  },
  {
    name: 'BatchNorm channels-first',
    className: 'DropnormBatchNorm',
    make: () => dn.layers.batchNorm({ axis: 1, momentum: 0.9 }),
    shape: [4, 5, 3, 3],
  },
  {
    name: 'BatchNorm renorm',
    className: 'DropnormBatchNorm',
    make: () =>
      dn.layers.batchNorm({
        momentum: 0.9,
        renorm: true,
        renormClipping: { rmax: 1.5, rmin: 1 / 1.5, dmax: 0.5 },
      }),
    shape: [8, 6],
  },
  {
    name: 'BatchNorm Ghost (virtualBatchSize 4)',
    className: 'DropnormBatchNorm',
    make: () => dn.layers.batchNorm({ momentum: 0.9, virtualBatchSize: 4 }),
    shape: [8, 6],
  },
  {
    name: 'Dropout',
    className: 'DropnormDropout',
    make: () => dn.layers.dropout({ rate: 0.3, seed: 11 }),
    builtin: () => tf.layers.dropout({ rate: 0.3, seed: 11 }),
    shape: [8, 6],
    mask: 'input',
  },
  {
    name: 'Dropout classic',
    className: 'DropnormDropout',
    make: () => dn.layers.dropout({ rate: 0.3, seed: 12, mode: 'classic' }),
    shape: [8, 6],
    mask: 'input',
  },
  {
    name: 'SpatialDropout1D',
    className: 'DropnormSpatialDropout1D',
    make: () => dn.layers.spatialDropout1d({ rate: 0.3, seed: 13 }),
    builtin: () => tf.layers.spatialDropout1d({ rate: 0.3, seed: 13 }),
    shape: [4, 5, 6],
    mask: 'input',
  },
  {
    name: 'SpatialDropout2D',
    className: 'DropnormSpatialDropout2D',
    make: () => dn.layers.spatialDropout2d({ rate: 0.3, seed: 14 }),
    shape: [4, 3, 3, 6],
    mask: 'input',
  },
  {
    name: 'SpatialDropout3D',
    className: 'DropnormSpatialDropout3D',
    make: () => dn.layers.spatialDropout3d({ rate: 0.3, seed: 15 }),
    shape: [2, 2, 3, 3, 6],
    mask: 'input',
  },
  {
    name: 'GaussianDropout',
    className: 'DropnormGaussianDropout',
    make: () => dn.layers.gaussianDropout({ rate: 0.3, seed: 16 }),
    shape: [8, 6],
    mask: 'input',
  },
  {
    name: 'AlphaDropout',
    className: 'DropnormAlphaDropout',
    make: () => dn.layers.alphaDropout({ rate: 0.2, seed: 17 }),
    shape: [8, 6],
    mask: 'input',
  },
  {
    name: 'DropConnectDense',
    className: 'DropnormDropConnectDense',
    make: () =>
      dn.layers.dropConnectDense({
        units: 5,
        rate: 0.3,
        seed: 18,
        kernelInitializer: glorot(19),
        biasInitializer: 'zeros',
      }),
    builtin: () => tf.layers.dense({ units: 5, kernelInitializer: glorot(19) }),
    shape: [8, 6],
    mask: 'kernel',
  },
  {
    name: 'DropBlock2D',
    className: 'DropnormDropBlock2D',
    make: () => dn.layers.dropBlock2d({ rate: 0.3, blockSize: 2, seed: 20 }),
    shape: [2, 6, 6, 3],
    mask: 'input',
  },
  {
    name: 'DropPath',
    className: 'DropnormDropPath',
    make: () => dn.layers.dropPath({ rate: 0.3, seed: 21 }),
    shape: [8, 6],
    mask: 'input',
  },
  // The per-sample normalizations (issue 22): deterministic, no mask; weights γ, β (scale) trained.
  {
    name: 'GroupNorm (2 groups, channels-last)',
    className: 'GroupNormalization',
    make: () => dn.layers.groupNorm({ groups: 2 }),
    shape: [4, 3, 3, 6],
  },
  {
    name: 'InstanceNorm',
    className: 'Addons>InstanceNormalization',
    make: () => dn.layers.instanceNorm({}),
    shape: [4, 3, 3, 5],
  },
  {
    name: 'AddonsGroupNormalization (2 groups, rank 3)',
    className: 'Addons>GroupNormalization',
    make: () => new dn.AddonsGroupNormalization({ groups: 2 }),
    shape: [4, 5, 6],
  },
  {
    name: 'RMSNorm',
    className: 'RMSNormalization',
    make: () => dn.layers.rmsNorm({}),
    shape: [8, 6],
  },
];

/**
 * The registered layer classes of the pack (from `dn.PACK_CLASS_NAMES`, the classes register.ts
 * registers) that no row covers: the browser test requires this to be empty.
 */
export function uncoveredLayerClasses(): string[] {
  const map = tf.serialization.SerializationMap.getMap().classNameMap;
  const layers = dn.PACK_CLASS_NAMES.filter((name) => {
    const cls = map[name]?.[0] as unknown as { prototype: unknown } | undefined;
    return cls !== undefined && cls.prototype instanceof tf.layers.Layer;
  });
  const covered = new Set(LAYER_ROWS.map((r) => r.className));
  return layers.filter((name) => !covered.has(name));
}
