/**
 * Factories for the pack's layers, in the style of `tf.layers.*`: `layers.batchNorm({...})`.
 *
 * @module layers
 */
import { AlphaDropout, AlphaDropoutArgs } from './alpha_dropout';
import { BatchNorm, BatchNormArgs } from './batch_norm';
import { DropBlock2D, DropBlock2DArgs } from './drop_block';
import { DropConnectDense, DropConnectDenseArgs } from './drop_connect_dense';
import { DropPath, DropPathArgs } from './drop_path';
import { Dropout, DropoutArgs } from './dropout';
import { GaussianDropout, GaussianDropoutArgs } from './gaussian_dropout';
import { GroupNorm, GroupNormArgs, InstanceNorm, InstanceNormArgs } from './group_norm';
import { RMSNorm, RMSNormArgs } from './rms_norm';
import {
  SpatialDropout1D,
  SpatialDropout2D,
  SpatialDropout3D,
  SpatialDropoutArgs,
} from './spatial_dropout';

/** Batch normalization with unbiased running variance; see {@link BatchNorm}. */
export function batchNorm(args?: BatchNormArgs): BatchNorm {
  return new BatchNorm(args);
}

/** Dropout, inverted or classic, with a seeded mask sequence; see {@link Dropout}. */
export function dropout(args: DropoutArgs): Dropout {
  return new Dropout(args);
}

/** Spatial dropout over `[batch, steps, channels]`: drops whole channels; see {@link SpatialDropout1D}. */
export function spatialDropout1d(args: SpatialDropoutArgs): SpatialDropout1D {
  return new SpatialDropout1D(args);
}

/** Spatial dropout over images: drops whole feature maps; see {@link SpatialDropout2D}. */
export function spatialDropout2d(args: SpatialDropoutArgs): SpatialDropout2D {
  return new SpatialDropout2D(args);
}

/** Spatial dropout over volumes: drops whole feature volumes; see {@link SpatialDropout3D}. */
export function spatialDropout3d(args: SpatialDropoutArgs): SpatialDropout3D {
  return new SpatialDropout3D(args);
}

/** Multiplicative N(1, rate/(1−rate)) noise; see {@link GaussianDropout}. */
export function gaussianDropout(args: GaussianDropoutArgs): GaussianDropout {
  return new GaussianDropout(args);
}

/** Alpha dropout for SELU networks, keeping mean 0 and variance 1; see {@link AlphaDropout}. */
export function alphaDropout(args: AlphaDropoutArgs): AlphaDropout {
  return new AlphaDropout(args);
}

/** A dense layer with DropConnect on its weights; see {@link DropConnectDense}. */
export function dropConnectDense(args: DropConnectDenseArgs): DropConnectDense {
  return new DropConnectDense(args);
}

/** DropBlock: drops contiguous blocks of feature maps; see {@link DropBlock2D}. */
export function dropBlock2d(args: DropBlock2DArgs): DropBlock2D {
  return new DropBlock2D(args);
}

/** DropPath (stochastic depth): drops a whole sample's branch; see {@link DropPath}. */
export function dropPath(args: DropPathArgs): DropPath {
  return new DropPath(args);
}

/** Group normalization (Wu & He 2018), per sample over groups of channels; see {@link GroupNorm}. */
export function groupNorm(args?: GroupNormArgs): GroupNorm {
  return new GroupNorm(args);
}

/** Instance normalization (Ulyanov et al. 2016): groupNorm with one group per channel; see {@link InstanceNorm}. */
export function instanceNorm(args?: InstanceNormArgs): InstanceNorm {
  return new InstanceNorm(args);
}

/** RMS normalization (Zhang & Sennrich 2019): x · rsqrt(mean(x²) + ε) · scale; see {@link RMSNorm}. */
export function rmsNorm(args?: RMSNormArgs): RMSNorm {
  return new RMSNorm(args);
}
