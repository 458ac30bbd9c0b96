/**
 * Factories for the pack's layers, in the style of `tf.layers.*`: `layers.batchNorm({...})`.
 */
import { BatchNorm, BatchNormArgs } from './batch_norm';

/** Batch normalization with unbiased running variance; see {@link BatchNorm}. */
export function batchNorm(args?: BatchNormArgs): BatchNorm {
  return new BatchNorm(args);
}
