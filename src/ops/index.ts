/** Pure tensor functions behind the layers (no state), testable against closed forms. */
export {
  batchMoments,
  besselFactor,
  channelShape,
  normalizeInference,
  normalizeTraining,
  reductionAxes,
} from './batch_norm';
export type { BatchMoments, VarianceCorrection } from './batch_norm';
export {
  batchNormAffine,
  foldAffineIntoKernel,
  foldAffineIntoNextKernel,
  foldBatchNormWeights,
  inputChannels,
  outputChannels,
} from './fold';
export type { BatchNormStatistics, ChannelAffine, KernelAndBias, KernelLayout } from './fold';
