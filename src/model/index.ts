/** Whole-model transforms, all built on one graph-rewrite helper ({@link rewriteModel}). */
export { foldBatchNorm, foldBatchNormAsync } from './fold_batch_norm';
export type {
  FoldBatchNormOptions,
  FoldBatchNormResult,
  FoldedBatchNorm,
  FusedActivation,
  SkippedBatchNorm,
} from './fold_batch_norm';
export { exportForInference, exportForInferenceAsync } from './export';
export type {
  ExportForInferenceOptions,
  ExportForInferenceResult,
  RemovedLayer,
  ReplacedLayer,
} from './export';
export { recalibrateBatchNorm } from './recalibrate';
export type { RecalibrateOptions, RecalibratedBatchNorm, RecalibrationData } from './recalibrate';
export { convertToBuiltins, convertToDropnorm, CUMULATIVE_FALLBACK_MOMENTUM } from './convert';
export type {
  ConversionResult,
  ConvertToDropnormOptions,
  ConvertedLayer,
  SkippedLayer,
} from './convert';
export { mcPredict, mcPredictAsync, MAX_MC_SAMPLES } from './mc_predict';
export type { McOutputs, McPredictOptions, McPrediction, McProgress } from './mc_predict';
export { modelGraph, rewriteModel } from './rewrite';
export type { GraphNode, LayerSpec, ModelGraph, RewriteOptions, Substitution } from './rewrite';
export { saveForInference } from './save_for_inference';
export type {
  SaveForInferenceOptions,
  SaveForInferenceResult,
  SavedWeight,
  CorrectedBias,
  OutputError,
} from './save_for_inference';
export type { EqualizationResult, EqualizedPair, SkippedPair } from './equalize';
export type { QuantizeDtype, WeightDtype } from './quantize';
