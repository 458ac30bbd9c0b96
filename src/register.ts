/**
 * Registers every serializable class of the pack with tfjs, in one place, so saved models
 * load. Class names are checked against the built-ins: `SerializationMap` is keyed by className,
 * so a collision would silently replace a built-in layer for every model the user loads. This
 * module runs once per process: the package entry points hand a second copy of the same version
 * the first one's exports (scripts/build-entries.mjs).
 */
import * as tf from '@tensorflow/tfjs';
import { AlphaDropout } from './layers/alpha_dropout';
import { BatchNorm } from './layers/batch_norm';
import { DropBlock2D } from './layers/drop_block';
import { DropConnectDense } from './layers/drop_connect_dense';
import { DropPath } from './layers/drop_path';
import { Dropout } from './layers/dropout';
import { GaussianDropout } from './layers/gaussian_dropout';
import { AddonsGroupNormalization, GroupNorm, InstanceNorm } from './layers/group_norm';
import { RMSNorm } from './layers/rms_norm';
import { SpatialDropout1D, SpatialDropout2D, SpatialDropout3D } from './layers/spatial_dropout';
import { ClipOptimizer } from './train/clip_optimizer';

/** The pack's serializable classes. */
export const PACK_CLASSES = [
  BatchNorm,
  Dropout,
  SpatialDropout1D,
  SpatialDropout2D,
  SpatialDropout3D,
  GaussianDropout,
  AlphaDropout,
  DropConnectDense,
  DropBlock2D,
  DropPath,
  GroupNorm,
  AddonsGroupNormalization,
  InstanceNorm,
  RMSNorm,
  ClipOptimizer,
] as const;

/** The className of each of the pack's classes (what a model.json names). */
export const PACK_CLASS_NAMES: readonly string[] = PACK_CLASSES.map((c) => c.className);

for (const cls of PACK_CLASSES) {
  const existing = tf.serialization.SerializationMap.getMap().classNameMap[cls.className];
  if (existing && existing[0] !== cls) {
    throw new Error(
      `tfjs-dropnorm: serialization name '${cls.className}' is already registered by another class; ` +
        'this copy of tfjs-dropnorm would replace it. Copies of one version share one instance ' +
        '(through their package entry points); this is a second version, or a file of the pack ' +
        'loaded directly. Install one version (`npm ls tfjs-dropnorm`, `npm dedupe`) and import ' +
        "'tfjs-dropnorm' only through its entry points.",
    );
  }
  tf.serialization.registerClass(
    cls as unknown as tf.serialization.SerializableConstructor<tf.serialization.Serializable>,
  );
}
