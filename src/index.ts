/**
 * tfjs-dropnorm: dropout variants and batch normalization with unbiased running variance for
 * TensorFlow.js layers models, and the gradient kernels the wasm backend needs to train conv nets.
 * Browser-safe: this entry uses only tfjs APIs; Node-only helpers (file IO, backend picker) live in
 * `tfjs-dropnorm/node`.
 */
import './register';
import * as layers from './layers';
import * as dropnorm from './index';

export { layers };
export { BatchNorm } from './layers/batch_norm';
export type { BatchNormArgs } from './layers/batch_norm';
export type { RenormClipping, RenormRamp, VarianceCorrection } from './ops/batch_norm';
export { StochasticLayer } from './layers/stochastic';
export type { StochasticLayerArgs } from './layers/stochastic';
export { Dropout } from './layers/dropout';
export type { DropoutArgs, DropoutMode } from './layers/dropout';
export { SpatialDropout1D, SpatialDropout2D, SpatialDropout3D } from './layers/spatial_dropout';
export type { SpatialDropoutArgs } from './layers/spatial_dropout';
export { GaussianDropout } from './layers/gaussian_dropout';
export type { GaussianDropoutArgs } from './layers/gaussian_dropout';
export { AlphaDropout } from './layers/alpha_dropout';
export type { AlphaDropoutArgs } from './layers/alpha_dropout';
export { DropConnectDense } from './layers/drop_connect_dense';
export type { DropConnectDenseArgs } from './layers/drop_connect_dense';
export { DropBlock2D } from './layers/drop_block';
export type { DropBlock2DArgs } from './layers/drop_block';
export { DropPath } from './layers/drop_path';
export type { DropPathArgs } from './layers/drop_path';
export { GroupNorm, InstanceNorm, AddonsGroupNormalization } from './layers/group_norm';
export type { GroupNormArgs, InstanceNormArgs } from './layers/group_norm';
export { RMSNorm } from './layers/rms_norm';
export type { RMSNormArgs } from './layers/rms_norm';
export type { DataFormat } from './ops/dropout';
export {
  entropy,
  predictiveEntropy,
  expectedEntropy,
  mutualInformation,
  mutualInformationFromEntropies,
} from './ops/uncertainty';
export type { ProbabilityKind } from './ops/uncertainty';
export { SeedStream, mixSeed } from './random';
export * as ops from './ops';
export { DropnormValueError } from './errors';
export { registerWasmTrainingKernels, WASM_TRAINING_KERNELS } from './kernels';
export type { WasmTrainingKernels } from './kernels';
export { PACK_CLASS_NAMES } from './register';
export {
  clipOptimizer,
  ClipOptimizer,
  gradientNorms,
  firstLastRatio,
  GradientFlow,
  activationStats,
  DropRateScheduler,
  dropPathRates,
} from './train';
export type {
  ClipOptions,
  NonFiniteAction,
  GradientNormsOptions,
  LayerGradientNorm,
  LossSpec,
  GradientFlowOptions,
  GradientFlowRecord,
  LayerActivationStats,
  DropRateSchedulerOptions,
  ScheduleUnit,
} from './train';
export {
  foldBatchNorm,
  exportForInference,
  recalibrateBatchNorm,
  convertToDropnorm,
  convertToBuiltins,
  CUMULATIVE_FALLBACK_MOMENTUM,
  mcPredict,
  mcPredictAsync,
  MAX_MC_SAMPLES,
  rewriteModel,
  modelGraph,
} from './model';
export type {
  ExportForInferenceOptions,
  ExportForInferenceResult,
  RemovedLayer,
  ReplacedLayer,
  FoldBatchNormOptions,
  FoldBatchNormResult,
  FusedActivation,
  FoldedBatchNorm,
  SkippedBatchNorm,
  RecalibrateOptions,
  RecalibratedBatchNorm,
  RecalibrationData,
  ConvertToDropnormOptions,
  ConversionResult,
  ConvertedLayer,
  SkippedLayer,
  McPredictOptions,
  McPrediction,
  McProgress,
  GraphNode,
  LayerSpec,
  ModelGraph,
  RewriteOptions,
  Substitution,
} from './model';

/**
 * The whole namespace, also as the default export: `import dn from 'tfjs-dropnorm'` and
 * `import * as dn from 'tfjs-dropnorm'` give the same object under every module setting
 * (TypeScript accepts a default import from a CommonJS package under `esModuleInterop`, so the
 * CommonJS build must have one for that to run).
 */
const namespace: typeof import('./index') = dropnorm;
export default namespace;
