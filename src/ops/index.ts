/**
 * Pure tensor functions behind the layers (no state), testable against closed forms.
 *
 * @module ops
 */
export {
  batchMoments,
  besselFactor,
  channelShape,
  countUsableBatch,
  guardedMovingAverage,
  maskedBatchMoments,
  maskWeights,
  normalizeInference,
  normalizeTraining,
  oneBlockPerVirtualBatch,
  poolVirtualBatchStatistics,
  reductionAxes,
  renormCorrection,
  renormLimits,
  unbiasedVariance,
  usableChannels,
  virtualBatches,
} from './batch_norm';
export type {
  BatchMoments,
  NormalizeTrainingOptions,
  RenormClipping,
  RenormCorrection,
  RenormLimits,
  RenormRamp,
  RenormReference,
  VarianceCorrection,
  VirtualBatchBlock,
} from './batch_norm';
export {
  SELU_ALPHA,
  SELU_SCALE,
  alphaDropout,
  alphaDropoutParams,
  checkRate,
  dropBlock2d,
  dropBlockGamma,
  dropBlockMask,
  dropConnect,
  dropPath,
  dropout,
  gaussianDropout,
  keepMask,
  resolveNoiseShape,
  samplewiseNoiseShape,
  spatialDropout,
  spatialNoiseShape,
} from './dropout';
export type { AlphaDropoutParams, DataFormat, DropoutOptions } from './dropout';
export {
  batchNormAffine,
  foldAffineIntoKernel,
  foldAffineIntoNextKernel,
  foldBatchNormWeights,
  inputChannels,
  outputChannels,
} from './fold';
export type { BatchNormStatistics, ChannelAffine, KernelAndBias, KernelLayout } from './fold';
export { groupMoments, groupNorm, groupView } from './group_norm';
export type { GroupMoments, GroupView } from './group_norm';
export { rmsNorm } from './rms_norm';
export {
  entropy,
  expectedEntropy,
  mutualInformation,
  mutualInformationFromEntropies,
  predictiveEntropy,
} from './uncertainty';
export type { ProbabilityKind } from './uncertainty';
